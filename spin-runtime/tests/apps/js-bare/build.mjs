// Bundles src/index.js for j2w, as the Spin JS template's build.mjs does: the Spin
// esbuild plugin marks the WIT interfaces (from package.json `witDependencies`) external.
import { build } from 'esbuild';
import { SpinEsbuildPlugin } from '@spinframework/build-tools/plugins/esbuild/index.js';

const spinPlugin = await SpinEsbuildPlugin();

await build({
    entryPoints: ['./src/index.js'],
    outfile: './build/bundle.js',
    bundle: true,
    format: 'esm',
    platform: 'node',
    minify: false,
    plugins: [spinPlugin],
    logLevel: 'error',
});

// Bench app for spinlet's heavy-apps bench (spin-runtime/benches/heavy.rs): the JS SDK's
// hello (build-tools' j2w over componentize-js, wasi-http-proxy's fetch event) without
// Spin imports, so that `wasmtime serve` can serve the same component as the baseline.

addEventListener('fetch', (event) => {
    event.respondWith(
        new Response('Hello from the JS SDK', {
            status: 200,
            headers: { 'content-type': 'text/plain' },
        }),
    );
});

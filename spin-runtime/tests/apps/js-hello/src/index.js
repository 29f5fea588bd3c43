// Test app for spinlet's Spin runtime, built with the Spin JS SDK (build-tools' j2w
// over componentize-js, wasi-http-proxy for the fetch event and outbound `fetch`).
//
// The `op` query parameter picks what the handler does (the protocol shared by every
// SDK's hello app, see spin-runtime/tests/common/sdk_apps.rs): `hello` (default),
// `echo`, `var`, `kv-set`, `kv-get`, `fetch` and `sqlite&value=V[&db=L]` (create table
// `t`, insert V and answer every value in database L, `default` unless given,
// comma-separated; 500 with the error when it fails).

import { Store } from 'fermyon:spin/key-value@2.0.0';
import { Connection } from 'fermyon:spin/sqlite@2.0.0';
import * as variables from 'fermyon:spin/variables@2.0.0';

function text(status, body) {
    return new Response(body, { status, headers: { 'content-type': 'text/plain' } });
}

// componentize-js throws a `result` error as an Error whose `payload` is the WIT variant.
function describe(e) {
    return e && e.payload !== undefined ? JSON.stringify(e.payload) : String(e);
}

async function handle(request) {
    const url = new URL(request.url);
    const q = (name) => url.searchParams.get(name) ?? '';
    const op = url.searchParams.get('op') ?? 'hello';
    switch (op) {
        case 'hello':
            return text(200, 'Hello from the JS SDK');
        case 'echo': {
            const lines = [`method: ${request.method}`, `uri: ${request.url}`];
            const headers = [];
            for (const [k, v] of request.headers) headers.push(`${k}: ${v}`);
            headers.sort();
            return text(200, lines.concat(headers).join('\n') + '\n');
        }
        case 'var':
            try {
                return text(200, variables.get(q('name')));
            } catch (e) {
                return text(404, `variable error: ${describe(e)}`);
            }
        case 'kv-set':
        case 'kv-get': {
            let value;
            try {
                const store = Store.open('default');
                if (op === 'kv-set') {
                    store.set(q('key'), new TextEncoder().encode(q('value')));
                    return text(200, 'stored');
                }
                value = store.get(q('key'));
            } catch (e) {
                return text(403, `kv error: ${describe(e)}`);
            }
            return value === undefined ? text(404, 'missing') : text(200, new TextDecoder().decode(value));
        }
        case 'fetch':
            try {
                const resp = await fetch(q('url'));
                return text(200, `${resp.status} ${await resp.text()}`);
            } catch (e) {
                return text(502, `fetch error: ${e}`);
            }
        case 'sqlite':
            try {
                const db = Connection.open(url.searchParams.get('db') ?? 'default');
                db.execute('CREATE TABLE IF NOT EXISTS t (v TEXT NOT NULL)', []);
                // A WIT variant is `{ tag, val }` in jco's bindings.
                db.execute('INSERT INTO t (v) VALUES (?)', [{ tag: 'text', val: q('value') }]);
                const result = db.execute('SELECT v FROM t ORDER BY rowid', []);
                return text(200, result.rows.map((row) => row.values[0].val).join(','));
            } catch (e) {
                return text(500, `sqlite error: ${describe(e)}`);
            }
        default:
            return text(400, `unknown op ${op}`);
    }
}

addEventListener('fetch', (event) => {
    event.respondWith(handle(event.request));
});

"""Test app for spinlet's Spin runtime, built with the Python spin-sdk and componentize-py.

componentize-py builds against the whole `spin-http` world, so this component imports
every Spin interface: it only instantiates if the host provides (or stubs) all of them.

The `op` query parameter picks what the handler does (the protocol shared by every SDK's
hello app, see spin-runtime/tests/common/sdk_apps.rs): `hello` (default), `echo`, `var`,
`kv-set`, `kv-get`, `fetch` and `sqlite&value=V[&db=L]` (create table `t`, insert V and
answer every value in database L, `default` unless given, comma-separated; 500 with the
error when it fails); and `llm`, an interface the host only stubs.
"""

from urllib.parse import parse_qs, urlsplit

from spin_sdk import http, key_value, llm, variables
from spin_sdk.http import Request, Response

# Not `spin_sdk.sqlite`: in spin-sdk 3.4.1 it imports `spin_sdk.wit.imports.sqlite`, but
# componentize-py names the bindings of `fermyon:spin/sqlite@2.0.0` `fermyon_spin_sqlite`
# (the world also imports `spin:sqlite/sqlite@3.0.0`), so that import fails at build time.
from spin_sdk.wit.imports.fermyon_spin_sqlite import Connection, Value_Text


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, body.encode("utf-8"))


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.uri).query, keep_blank_values=True).items()}
        op = query.get("op", "hello")
        if op == "hello":
            return text(200, "Hello from the Python SDK")
        if op == "echo":
            lines = [f"method: {request.method}", f"uri: {request.uri}"]
            lines += sorted(f"{k}: {v}" for k, v in request.headers.items())
            return text(200, "\n".join(lines) + "\n")
        if op == "var":
            try:
                return text(200, variables.get(query.get("name", "")))
            except Exception as e:  # the SDK raises Err(variables.Error_*)
                return text(404, f"variable error: {e!r}")
        if op in ("kv-set", "kv-get"):
            try:
                with key_value.open_default() as store:
                    if op == "kv-set":
                        store.set(query.get("key", ""), query.get("value", "").encode("utf-8"))
                        return text(200, "stored")
                    value = store.get(query.get("key", ""))
            except Exception as e:  # Err(key_value.Error_*)
                return text(403, f"kv error: {e!r}")
            if value is None:
                return text(404, "missing")
            return text(200, value.decode("utf-8"))
        if op == "fetch":
            try:
                resp = http.send(Request("GET", query.get("url", ""), {}, None))
            except Exception as e:
                return text(502, f"fetch error: {e!r}")
            return text(200, f"{resp.status} {(resp.body or b'').decode('utf-8')}")
        if op == "sqlite":
            try:
                with Connection.open(query.get("db", "default")) as db:
                    db.execute("CREATE TABLE IF NOT EXISTS t (v TEXT NOT NULL)", [])
                    db.execute("INSERT INTO t (v) VALUES (?)", [Value_Text(query.get("value", ""))])
                    result = db.execute("SELECT v FROM t ORDER BY rowid", [])
            except Exception as e:  # Err(Error_*)
                return text(500, f"sqlite error: {e!r}")
            return text(200, ",".join(row.values[0].value for row in result.rows))
        if op == "llm":
            try:
                result = llm.infer("llama2-chat", "hi")
            except Exception as e:  # Err(llm.Error_*)
                return text(501, f"llm error: {e!r}")
            return text(200, result.text)
        return text(400, f"unknown op {op}")

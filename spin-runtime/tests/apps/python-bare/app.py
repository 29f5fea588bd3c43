"""Python hello of the `wasi:http/proxy@0.2.0` world only: no Spin imports, so `wasmtime
serve` links it too (the heavy-apps bench's baseline for Python, as `js-bare` is for JS).

Built by componentize-py from the WASI WIT that spin-sdk ships (spin-runtime/tests/common/
toolchains.rs, `build_python_proxy_app`); `GET` anything answers the Python hello's greeting.
"""

from wit_world import exports
from wit_world.imports.types import Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam
from wit_world.types import Ok


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        response.set_status_code(200)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(b"Hello from the Python SDK")
        OutgoingBody.finish(body, None)

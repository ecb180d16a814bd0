"""The HTTP layer: stdlib ThreadingHTTPServer carrying `IngestApi`.

Request threads are not daemons, so a graceful shutdown waits for requests in
flight: a client that was told 202 really was acknowledged, and one that was
not gets its answer before the process exits.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connectors.http_ingest.api import ALERTS_PREFIX, UNIDENTIFIED, IngestApi, Refused, Response, problem

OPENAPI_PATH = "/openapi.json"


class IngestServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], api: IngestApi, openapi: bytes) -> None:
        self.api = api
        self.openapi = openapi
        super().__init__(address, IngestHandler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="http-ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, then wait for the requests in flight."""
        if self._thread is not None:
            self.shutdown()
        self.server_close()


class IngestHandler(BaseHTTPRequestHandler):
    server: IngestServer
    protocol_version = "HTTP/1.1"
    server_version = "bus-http-ingest"

    def do_GET(self) -> None:
        if self._path() == OPENAPI_PATH:
            self._send(200, self.server.openapi, {"Content-Type": "application/json"})
        else:
            self._reply(problem(404, "not-found", f"no resource {self._path()}"))

    def do_POST(self) -> None:
        api = self.server.api
        path = self._path()
        if not path.startswith(ALERTS_PREFIX):
            self._reply(problem(404, "not-found", f"POST alerts to {ALERTS_PREFIX}<alert-type>"))
            return
        authorized = api.authorize(path, self.headers.get("Authorization"))
        if isinstance(authorized, Refused):
            self._reply(authorized.response, authorized.system, close=True)
            return
        system, alert_type = authorized
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._reply(problem(411, "length-required", "send a Content-Length header"), system.name, close=True)
            return
        if int(length) > api.settings.max_body_bytes:
            self._reply(problem(413, "payload-too-large",
                                f"body of {length} bytes; at most {api.settings.max_body_bytes}"),
                        system.name, close=True)
            return
        body = self.rfile.read(int(length))
        self._reply(api.post_alerts(system, alert_type, self.headers.get("Content-Type"), body), system.name)

    def do_PUT(self) -> None:
        self._reply(problem(405, "method-not-allowed", "use POST"))

    do_DELETE = do_PATCH = do_PUT

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def _reply(self, response: Response, system: str = UNIDENTIFIED, close: bool = False) -> None:
        self.server.api.answered(system, response)
        headers = {"Content-Type": "application/json", **response.headers}
        if close:  # the body was not read: the connection cannot be reused
            headers["Connection"] = "close"
            self.close_connection = True
        self._send(response.status, response.encode(), headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged by the API with the system name; no stderr access log."""

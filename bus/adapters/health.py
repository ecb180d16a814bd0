"""Liveness, readiness and metrics over plain HTTP (stdlib only), for every long-running service.

The connectors and the router serve the same three paths. Orchestrators restart a
process whose `/healthz` fails and stop sending it work while `/readyz` fails, so
the two answer different questions: "is the process working at all" and "can it do
its job right now" (a connector: publish; a router: its tasks are restored and it is
connected). `/metrics` is Prometheus text from whatever `Metrics` the service keeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

#: () -> (ok, details): details are shown to the operator as JSON.
Probe = Callable[[], tuple[bool, dict[str, Any]]]


class Metrics(Protocol):
    """What `/metrics` serves: Prometheus exposition text and its content type."""

    content_type: str

    def render(self) -> bytes: ...


class HealthServer:
    """Serves `/healthz`, `/readyz` and `/metrics` on its own thread."""

    def __init__(self, host: str, port: int, *, metrics: Metrics, live: Probe, ready: Probe,
                 server_name: str = "bus") -> None:
        handler = _handler_class(metrics, live, ready, server_name)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_class(metrics: Metrics, live: Probe, ready: Probe, server_name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = server_name

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.render(), metrics.content_type)
            elif path in ("/healthz", "/livez"):
                self._probe(live)
            elif path == "/readyz":
                self._probe(ready)
            else:
                self._send(404, b'{"error": "not found"}', "application/json")

        def _probe(self, probe: Probe) -> None:
            try:
                ok, details = probe()
            except Exception as exc:  # a broken probe must answer, not hang the orchestrator
                ok, details = False, {"error": str(exc)}
            body = json.dumps({"status": "ok" if ok else "unavailable", **details}).encode()
            self._send(200 if ok else 503, body, "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Probes arrive every few seconds; they do not belong in the logs."""

    return Handler

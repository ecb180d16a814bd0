"""uvicorn serving the ingest application, on its own thread, inside the connector runtime.

The listening socket is bound when the server is made, so a port in use fails
the connector at start (`bus connector run` says "cannot start") and the
address is known before the first request. uvicorn runs its event loop on a
thread of its own: the connector runtime owns the process's signals, and
uvicorn installs signal handlers only on the main thread. On stop uvicorn stops
accepting, closes idle connections and waits for the requests in flight: a
client that was told 202 really was acknowledged, and one that was not gets its
answer before the process exits.
"""

from __future__ import annotations

import math
import socket
import threading

import uvicorn
from fastapi import FastAPI

SERVER_NAME = "bus-http-ingest"


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0 = any free port), IPv6 when the host is an IPv6 address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


class IngestServer:
    def __init__(self, app: FastAPI, host: str, port: int, *, grace_s: float) -> None:
        """`grace_s`: how long a stop waits for requests in flight before cancelling them."""
        self.socket = listen(host, port)
        config = uvicorn.Config(
            app,
            http="h11", ws="none", lifespan="off",
            log_config=None,  # the connector configured logging; uvicorn must not reconfigure it
            access_log=False,  # every answer is logged by the API, with the system that sent it
            server_header=False, headers=[("server", SERVER_NAME)],
            timeout_graceful_shutdown=math.ceil(grace_s),
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def started(self) -> bool:
        """uvicorn accepts connections (they queue on the socket until then)."""
        return self._server.started and self.serving

    @property
    def serving(self) -> bool:
        """False once the server thread ended, e.g. because uvicorn failed."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="http-ingest", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        except BaseException as exc:  # SystemExit included: uvicorn exits on startup failures
            self.error = exc
            raise

    def stop(self) -> None:
        """Stop accepting, then wait for the requests in flight (up to the grace period)."""
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join()
        self.close()

    def close(self) -> None:
        self.socket.close()

"""The http-ingest connector."""

from __future__ import annotations

from typing import Any, ClassVar

from bus.errors import ServiceError
from connectors.http_ingest.api import ALERTS_PREFIX, IngestApi
from connectors.http_ingest.app import create_app
from connectors.http_ingest.auth import TokenTable
from connectors.http_ingest.config import HttpIngestSettings
from connectors.http_ingest.server import IngestServer
from connectors.sdk.runtime import Connector, Services

GRACE_MARGIN_S = 5.0


class HttpIngestConnector(Connector):
    """Agency systems POST alerts as JSON to /v1/alerts/{type}; 202 once Kafka acknowledged them."""

    name = "http-ingest"
    settings_class: ClassVar[type[HttpIngestSettings]] = HttpIngestSettings
    settings: HttpIngestSettings

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        ingest = self.settings.ingest
        api = IngestApi(ingest, TokenTable(ingest.systems), services)
        publish = self.settings.publish
        # A request in flight at shutdown needs at most one more Kafka answer: the stop ends its retries.
        grace = publish.connect_timeout_s + publish.ack_timeout_s + GRACE_MARGIN_S
        self.server = IngestServer(create_app(api), ingest.host, ingest.port, grace_s=grace)

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def run(self) -> None:
        self.server.start()
        host, port = self.address
        self.log.info("http ingest listening", url=f"http://{host}:{port}{ALERTS_PREFIX}",
                      systems=[s.name for s in self.settings.ingest.systems])
        try:
            while not self.services.stop.wait(1.0):
                if not self.server.serving:
                    raise ServiceError(f"the HTTP server stopped unexpectedly: {self.server.error!r}")
                self.services.beat()
        finally:
            self.server.stop()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.server.started, {"listening": "{}:{}".format(*self.address)}

    def close(self) -> None:
        self.server.close()

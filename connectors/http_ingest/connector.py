"""The http-ingest connector."""

from __future__ import annotations

from typing import Any, ClassVar

from connectors.http_ingest.api import IngestApi
from connectors.http_ingest.auth import TokenTable
from connectors.http_ingest.config import HttpIngestSettings
from connectors.http_ingest.openapi import render
from connectors.http_ingest.server import IngestServer
from connectors.sdk.runtime import Connector, Services


class HttpIngestConnector(Connector):
    """Agency systems POST alerts as JSON to /v1/alerts/{type}; 202 once Kafka acknowledged them."""

    name = "http-ingest"
    settings_class: ClassVar[type[HttpIngestSettings]] = HttpIngestSettings

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        ingest = self.settings.ingest
        api = IngestApi(ingest, TokenTable(ingest.systems), services)
        self.server = IngestServer((ingest.host, ingest.port), api, render().encode())

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def run(self) -> None:
        self.server.start()
        host, port = self.address
        self.log.info("http ingest listening", url=f"http://{host}:{port}/v1/alerts/",
                      systems=[s.name for s in self.settings.ingest.systems])
        while not self.services.stop.wait(1.0):
            self.services.beat()
        self.server.stop()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return True, {"listening": "{}:{}".format(*self.address)}

    def close(self) -> None:
        self.server.server_close()

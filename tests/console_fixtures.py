"""Shared by the console's unit tests: a demo federation, sealed feed records, a memory cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.adapters.federation_file import DemoFederation
from bus.adapters.feed_index import FeedIndex
from bus.adapters.kafka.memory import MemoryEngine
from bus.adapters.kafka.records import Delivery, Headers, wire_headers
from bus.core.confidential import Decryptor, seal_encrypted
from bus.core.models import BaseAlert
from bus.core.sealing import SealedRecord, seal
from bus.core.topology import feed_topic
from bus.services.feed_indexer import FeedIndexer
from bus.services.feed_verdicts import FeedVerifier
from tests.helpers import CODES, SCHEMAS, example

MEMBER = "EUROPOL"
TOPIC = feed_topic(MEMBER)


@dataclass
class Feed:
    """A memory cluster with the member's feed topic, and a way to put records on it."""

    fed: DemoFederation
    engine: MemoryEngine = field(default_factory=MemoryEngine)
    partitions: int = 3
    _next: int = 0

    def __post_init__(self) -> None:
        self.engine.create_topic(TOPIC, partitions=self.partitions)

    def sealed(self, alert: BaseAlert, *, encrypt: bool = False) -> SealedRecord:
        signer = self.fed.signers[alert.header.producer]
        if encrypt:
            return seal_encrypted(alert, signer, self.fed.directory, SCHEMAS)
        return seal(alert, signer, SCHEMAS)

    def put(self, alert: BaseAlert, *, encrypt: bool = False, rule: str | None = "containers-to-europol",
            tamper: bool = False, extra_headers: Headers = ()) -> Delivery:
        record = self.sealed(alert, encrypt=encrypt)
        value = record.value
        if tamper:
            value = value[:-1] + bytes([value[-1] ^ 1])
        headers = wire_headers(record.headers) + tuple(extra_headers)
        if rule is not None:
            headers += ((b"bus_route_rule", rule.encode()),)
        return self.put_raw(value, key=record.key, headers=headers)

    def put_raw(self, value: bytes | None, *, key: bytes | None = None, headers: Headers = ()) -> Delivery:
        partition = self._next % self.partitions
        self._next += 1
        return self.engine.produce_raw(TOPIC, partition, value, key=key, headers=headers)

    def verifier(self, *, decrypt: bool = True) -> FeedVerifier:
        decryptor = Decryptor.of([self.fed.decryption_keys[MEMBER]]) if decrypt else None
        return FeedVerifier(lambda: self.fed.directory, decryptor, SCHEMAS, CODES)

    def indexer(self, path: Path, **kwargs: Any) -> FeedIndexer:
        verifier = kwargs.pop("verifier", None) or self.verifier()
        return FeedIndexer(self.engine, TOPIC, FeedIndex(path, TOPIC), verifier, poll_timeout=0.05, **kwargs)


def container(summary: str = "Reefer over declared weight", producer: str = "NL-CUSTOMS", **header: Any) -> BaseAlert:
    return example("suspicious-container", producer=producer, summary=summary,
                   release_to=header.pop("release_to", [MEMBER, "BE-CUSTOMS"]), **header)


def drain(indexer: FeedIndexer, expected: int) -> list[int]:
    """Step until `expected` new records are indexed (the memory engine answers at once)."""
    ids: list[int] = []
    for _ in range(50):
        ids += indexer.step()
        if len(ids) >= expected:
            return ids
    raise AssertionError(f"indexed {len(ids)} of {expected} records")

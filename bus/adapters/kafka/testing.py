"""Test tooling: write records no well-behaved client would, to see that nothing breaks.

Lives in the port because only the port may import a Kafka client. Neither
client can send a header name that is not UTF-8 (and kafka-python no null header
value), so `write_hostile` builds the record batch itself with kafka-python's
batch builder and sends one Produce request (v3, acks=all) on a plain socket.
PLAINTEXT listeners only: it is for tests against a local broker.

    write_hostile(settings, "alerts.x", 0, [
        HostileRecord(key=None, value=b"x", headers=[(b"\\xff\\xfe", None)]),
    ])
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

from bus.adapters.kafka._common import bootstrap_addresses
from bus.config import KafkaSettings
from bus.errors import ConfigError, KafkaOperationFailed, KafkaUnavailable


@dataclass(frozen=True)
class HostileRecord:
    """Any bytes anywhere: names that are not UTF-8, null or empty keys and values, many headers."""

    value: bytes | None
    key: bytes | None = None
    headers: Sequence[tuple[bytes, bytes | None]] = field(default_factory=tuple)


class _RawName(str):
    """A header name the batch builder writes byte for byte: it calls `name.encode("utf-8")`."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def _batch(records: Sequence[HostileRecord]) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=2**31 - 1)
    now = int(time.time() * 1000)
    for offset, record in enumerate(records):
        headers = [(_RawName(name), value) for name, value in record.headers]
        builder.append(offset, now, record.key, record.value, headers)
    return bytes(builder.build())


def write_hostile(settings: KafkaSettings, topic: str, partition: int,
                  records: Sequence[HostileRecord], *, one_batch: bool = False, timeout: float = 30.0) -> int:
    """Append `records` to a partition in one request; returns the offset of the first.

    Each record is its own batch unless `one_batch`: kafka-python cannot read past an
    undecodable record within a batch (see the kafka-python engine), so the two shapes
    test different things. The partition's leader must be a bootstrap address (true of
    a one-node cluster).
    """
    if settings.security_protocol != "PLAINTEXT":
        raise ConfigError("write_hostile speaks to PLAINTEXT listeners only",
                          [("security_protocol", "must be PLAINTEXT")])
    if not records:
        raise ConfigError("write_hostile needs at least one record", [("records", "empty")])
    batches = [_batch(records)] if one_batch else [_batch([r]) for r in records]
    host, port = bootstrap_addresses(settings)[0]
    offsets = []
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            for n, batch in enumerate(batches, start=1):  # a Produce request holds one batch per partition
                offset = _produce(sock, topic, partition, batch, n, timeout)
                if offset is None:
                    break
                offsets.append(offset)
    except OSError as exc:
        raise KafkaUnavailable(f"cannot write hostile records to {host}:{port}: {exc}") from exc
    if not offsets:  # the first batch found no leader: nothing was written
        if timeout <= 0.2:
            raise KafkaOperationFailed(f"{topic}[{partition}] has no leader to write to")
        time.sleep(0.2)  # a topic created a moment ago: its leader is being elected
        return write_hostile(settings, topic, partition, records, one_batch=one_batch, timeout=timeout - 0.2)
    return offsets[0]


def _produce(sock: socket.socket, topic: str, partition: int, batch: bytes, correlation: int,
             timeout: float) -> int | None:
    topic_data = ProduceRequest.TopicProduceData
    request = ProduceRequest(
        transactional_id=None, acks=-1, timeout_ms=int(timeout * 1000),
        topic_data=[topic_data(name=topic, partition_data=[
            topic_data.PartitionProduceData(index=partition, records=batch)])])
    request.with_header(correlation_id=correlation, client_id="bus-hostile-writer")
    sock.sendall(request.encode(version=3, header=True, framed=True))
    (size,) = struct.unpack(">i", _read(sock, 4))
    response = ProduceResponse.decode(_read(sock, size), version=3, header=True)
    (answer,) = response.responses[0].partition_responses
    if answer.error_code in _NOT_READY and correlation == 1:
        return None  # no leader yet for the first batch: the caller waits and tries again
    if answer.error_code:
        raise KafkaOperationFailed(f"the broker refused the hostile batch for {topic}[{partition}]: "
                                   f"error code {answer.error_code}")
    return int(answer.base_offset)


_NOT_READY = (3, 5, 6)
"""UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER."""


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data

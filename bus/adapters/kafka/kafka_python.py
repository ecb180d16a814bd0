"""The `kafka-python` engine: the Kafka port on kafka-python 3.0.x, public API only.

How it keeps the port's promises where kafka-python does not on its own:

- Deadlines on transactions: kafka-python's `send_offsets_to_transaction`,
  `commit_transaction` and `abort_transaction` take no timeout, and in 3.0.12 one
  can wait forever when the coordinator dies at the wrong moment. Each step runs
  on a helper thread; if it has not returned by the deadline the step raises
  `OutcomeUnknown` and the producer is spent: close it and initialise a new one
  with the same transactional id (that fences this one and settles its
  transaction). The helper thread is left to finish or fail on its own.
- Honest errors: kafka-python's bootstrap reports every failure as the same
  timeout. The engine checks the connection once, first, itself
  (`_kafka_python_preflight`) and raises the error that names the problem.
- Undecodable records: kafka-python decodes header names itself and raises
  `CorruptRecordError` inside `poll()` for one that is not UTF-8, without saying
  which partition; polling again would spin. `_Isolate` finds the partition with a
  throw-away consumer that reads each candidate partition at this consumer's
  position, then this consumer seeks past the record.
- Null header values: kafka-python's `send()` accepts header values as bytes
  only, so this engine cannot send a null header value and refuses with
  `KafkaOperationFailed` instead of sending an empty one. It reads them fine.
- Rebalance callbacks run while `poll` is blocked, on kafka-python's IO thread.
- Client logs go to the `bus.kafka` logger at DEBUG, never to the console.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata
from kafka import TopicPartition as KTopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import CorruptRecordError, KafkaTimeoutError
from kafka.errors import KafkaError as KError

from bus.adapters.kafka._common import KAFKA_LOG, MAX_REQUEST_BYTES, Deadline, check_settings, no_answer
from bus.adapters.kafka._kafka_python_errors import Context, from_kafka_python
from bus.adapters.kafka._kafka_python_preflight import check_connection
from bus.adapters.kafka.port import Admin, GroupMetadata, RebalanceListener
from bus.adapters.kafka.records import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Capabilities,
    Delivery,
    Headers,
    Polled,
    Record,
    TopicPartition,
    UndecodableRecord,
)
from bus.config import KafkaSettings
from bus.errors import KafkaError, KafkaOperationFailed, NotAuthorized, OutcomeUnknown

T = TypeVar("T")
_TOPIC_AUTHORIZATION_FAILED = 29

# -- logs ----------------------------------------------------------------------------------------


class _ToBusKafka(logging.Handler):
    """kafka-python's loggers (`kafka.*`) -> `bus.kafka` at DEBUG, and nowhere else."""

    def emit(self, record: logging.LogRecord) -> None:
        KAFKA_LOG.debug("%s: %s", record.name, record.getMessage())


def _route_logs() -> None:
    kafka_log = logging.getLogger("kafka")
    if not any(isinstance(h, _ToBusKafka) for h in kafka_log.handlers):
        kafka_log.addHandler(_ToBusKafka())
    kafka_log.propagate = False


_route_logs()

# -- settings -> kafka-python configuration --------------------------------------------------


def client_config(settings: KafkaSettings, client_id: str | None = None) -> dict[str, Any]:
    """Keyword arguments every kafka-python client of this engine starts from."""
    config: dict[str, Any] = {
        "bootstrap_servers": [a.strip() for a in settings.bootstrap.split(",") if a.strip()],
        "security_protocol": settings.security_protocol,
        "client_id": client_id or settings.client_id,
        "bootstrap_timeout_ms": settings.bootstrap_timeout_ms,
    }
    if settings.security_protocol.startswith("SASL"):
        assert settings.sasl_password is not None  # check_settings
        config.update(sasl_mechanism=settings.sasl_mechanism, sasl_plain_username=settings.sasl_username,
                      sasl_plain_password=settings.sasl_password.get_secret_value())
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        if settings.ssl_cafile is not None:
            config["ssl_cafile"] = str(settings.ssl_cafile)
        config["ssl_check_hostname"] = True
    return config


def _build(settings: KafkaSettings, factory: Callable[[], T]) -> T:
    """A client, or the typed reason there is none (the preflight already passed)."""
    try:
        return factory()
    except KafkaTimeoutError:
        raise no_answer(settings) from None
    except KError as exc:
        raise from_kafka_python(exc, Context("connecting")) from None


# -- headers -------------------------------------------------------------------------------------


def _wire_headers(headers: Headers) -> list[tuple[str, bytes]]:
    out = []
    for name, value in headers:
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            raise KafkaOperationFailed(
                f"header name {name!r} is not UTF-8: the kafka-python engine cannot send it") from None
        if value is None:
            raise KafkaOperationFailed(
                f"header {text!r} has a null value: the kafka-python engine cannot send one "
                "(kafka-python accepts bytes only); use the confluent engine")
        out.append((text, value))
    return out


def _record(message: Any) -> Record:
    headers = tuple((k.encode("utf-8"), v) for k, v in (message.headers or ()))
    return Record(message.topic, message.partition, message.offset, message.timestamp,
                  message.key, message.value, headers)


def _ktp(tp: TopicPartition) -> KTopicPartition:
    return KTopicPartition(tp.topic, tp.partition)


def _tp(tp: KTopicPartition) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


# -- producers -----------------------------------------------------------------------------------


class _DeliveryFuture:
    def __init__(self, topic: str, future: Any) -> None:
        self._topic = topic
        self._future = future

    def done(self) -> bool:
        return bool(self._future.is_done)

    def result(self, timeout: float) -> Delivery:
        try:
            meta = self._future.get(timeout=timeout)
        except KafkaTimeoutError:
            raise OutcomeUnknown(f"no answer from Kafka for a record sent to {self._topic} "
                                 f"within {timeout:g} s; it may still be stored") from None
        except KError as exc:
            raise from_kafka_python(exc, Context(f"sending to {self._topic}", topic=self._topic)) from None
        return Delivery(meta.topic, meta.partition, meta.offset)


class KafkaPythonProducer:
    """Idempotent, acks=all; kafka-python's default partitioner is murmur2."""

    def __init__(self, settings: KafkaSettings, extra: Mapping[str, Any]) -> None:
        self._producer: Any = _build(settings, lambda: KafkaProducer(
            **client_config(settings, extra.get("client_id")),
            **{"acks": "all", "enable_idempotence": True, "max_request_size": MAX_REQUEST_BYTES,
               "delivery_timeout_ms": 120_000, **extra}))

    def send(self, topic: str, value: bytes | None, *, key: bytes | None = None,
             headers: Headers = (), partition: int | None = None) -> _DeliveryFuture:
        wire = _wire_headers(headers)
        if key is None and value is None:
            raise KafkaOperationFailed("a record with neither key nor value: the kafka-python engine "
                                       "cannot send one (kafka-python refuses it); use the confluent engine")
        try:
            future = self._producer.send(topic, value=value, key=key, headers=wire, partition=partition)
        except KError as exc:
            raise from_kafka_python(exc, Context(f"sending to {topic}", topic=topic)) from None
        return _DeliveryFuture(topic, future)

    def flush(self, timeout: float) -> None:
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            raise OutcomeUnknown(f"records not acknowledged within {timeout:g} s; "
                                 "they may still be stored") from None
        except KError as exc:
            raise from_kafka_python(exc, Context("flushing")) from None

    def close(self, timeout: float = 10.0) -> None:
        try:
            self._producer.close(timeout=timeout)
        except Exception as exc:  # close never raises (port contract)
            KAFKA_LOG.debug("closing producer: %s", exc)


class _KafkaPythonGroup:
    def __init__(self, metadata: object) -> None:
        self.metadata = metadata


def _within(timeout: float, action: str, call: Callable[[], T]) -> T:
    """Run a call that has no timeout of its own on a helper thread; `OutcomeUnknown` if it
    has not returned within `timeout` seconds (it goes on running; its result is dropped)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"bus-kafka {action}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise OutcomeUnknown(f"{action} did not finish within {timeout:g} s; its outcome is unknown. "
                             "Close this producer and initialise a new one with the same "
                             "transactional id, which settles the open transaction")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class KafkaPythonTransactionalProducer(KafkaPythonProducer):
    """Each transaction step within its deadline (see `_within`); a step that runs out spends
    the producer."""

    def __init__(self, settings: KafkaSettings, transactional_id: str, extra: Mapping[str, Any]) -> None:
        self.transactional_id = transactional_id
        self._spent: str | None = None
        super().__init__(settings, {**extra, "transactional_id": transactional_id})

    def _step(self, action: str, timeout: float, call: Callable[[], object]) -> None:
        if self._spent is not None:
            raise KafkaOperationFailed(f"{action}: this producer gave up on '{self._spent}'; "
                                       "close it and create a new one")
        context = Context(f"{action} (transactional id {self.transactional_id})",
                          transactional_id=self.transactional_id)
        try:
            _within(timeout, action, call)
        except OutcomeUnknown:
            self._spent = action
            raise
        except KError as exc:
            raise from_kafka_python(exc, context) from None

    def init(self, timeout: float) -> None:
        self._step("initialising transactions", timeout, self._producer.init_transactions)

    def begin(self) -> None:
        self._step("beginning a transaction", 30.0, self._producer.begin_transaction)

    def send(self, topic: str, value: bytes | None, *, key: bytes | None = None,
             headers: Headers = (), partition: int | None = None) -> _DeliveryFuture:
        if self._spent is not None:
            raise KafkaOperationFailed(f"sending: this producer gave up on '{self._spent}'")
        return super().send(topic, value, key=key, headers=headers, partition=partition)

    def send_offsets(self, offsets: Mapping[TopicPartition, int], group: GroupMetadata,
                     timeout: float) -> None:
        if not isinstance(group, _KafkaPythonGroup):
            raise KafkaOperationFailed("send_offsets needs the group metadata of a kafka-python consumer")
        positions = {_ktp(tp): OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
        self._step("sending offsets to the transaction", timeout,
                   lambda: self._producer.send_offsets_to_transaction(positions, group.metadata))

    def commit(self, timeout: float) -> None:
        self._step("committing the transaction", timeout, self._producer.commit_transaction)

    def abort(self, timeout: float) -> None:
        self._step("aborting the transaction", timeout, self._producer.abort_transaction)

    def close(self, timeout: float = 10.0) -> None:
        super().close(0 if self._spent is not None else timeout)


# -- consumer ------------------------------------------------------------------------------------


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """kafka-python's listener -> the port's `RebalanceListener`."""

    def __init__(self, listener: RebalanceListener | None) -> None:
        self._listener = listener

    def on_partitions_revoked(self, revoked: Collection[KTopicPartition]) -> None:
        if self._listener is not None:
            self._listener.on_revoked(sorted(_tp(p) for p in revoked))

    def on_partitions_assigned(self, assigned: Collection[KTopicPartition]) -> None:
        if self._listener is not None:
            self._listener.on_assigned(sorted(_tp(p) for p in assigned))

    def on_partitions_lost(self, lost: Collection[KTopicPartition]) -> None:
        if self._listener is not None:
            self._listener.on_lost(sorted(_tp(p) for p in lost))


class KafkaPythonConsumer:
    """read_committed by default, no auto-commit, range assignment, optional static membership."""

    def __init__(self, settings: KafkaSettings, *, group_id: str | None, group_instance_id: str | None,
                 read_committed: bool, from_beginning: bool, max_poll_records: int,
                 session_timeout_ms: int, client_id: str | None) -> None:
        self._settings = settings
        self._group_id = group_id
        self._probe_config: dict[str, Any] = {
            **client_config(settings, client_id),
            "isolation_level": "read_committed" if read_committed else "read_uncommitted",
            "enable_auto_commit": False,
        }
        options: dict[str, Any] = {
            **self._probe_config,
            "group_id": group_id,
            "auto_offset_reset": "earliest" if from_beginning else "latest",
            "max_poll_records": max_poll_records,
            "partition_assignment_strategy": [RangePartitionAssignor],
            "session_timeout_ms": session_timeout_ms,
        }
        if group_instance_id:
            options["group_instance_id"] = group_instance_id
        self._consumer: Any = _build(settings, lambda: KafkaConsumer(**options))

    def _context(self, action: str, topic: str | None = None) -> Context:
        return Context(action, topic=topic, group=self._group_id)

    def _call(self, action: str, call: Callable[[], T], topic: str | None = None) -> T:
        try:
            return call()
        except KafkaTimeoutError:
            raise OutcomeUnknown(f"{action}: no answer from Kafka in time") from None
        except KError as exc:
            raise from_kafka_python(exc, self._context(action, topic)) from None

    def subscribe(self, topics: Sequence[str] = (), *, pattern: str | None = None,
                  listener: RebalanceListener | None = None) -> None:
        self._call("subscribing", lambda: self._consumer.subscribe(
            topics=list(topics), pattern=pattern, listener=_Rebalance(listener)))

    def assign(self, partitions: Sequence[TopicPartition],
               offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._call("assigning", lambda: self._consumer.assign([_ktp(tp) for tp in partitions]))
        for tp, offset in (offsets or {}).items():  # kafka-python's seek is synchronous: nothing read before it
            self.seek(tp, offset)

    def assignment(self) -> set[TopicPartition]:
        return {_tp(p) for p in self._consumer.assignment()}

    def poll(self, timeout: float, max_records: int = 500) -> list[Polled]:
        try:
            batch = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        except CorruptRecordError as exc:
            return list[Polled](_Isolate(self._consumer, self._probe_config, self._settings).undecodable(exc))
        except KafkaTimeoutError:
            return []
        except KError as exc:
            raise from_kafka_python(exc, self._context("polling")) from None
        return [_record(m) for messages in batch.values() for m in messages]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        ktp = _ktp(tp)
        if offset == OFFSET_BEGINNING:
            self._call("seeking", lambda: self._consumer.seek_to_beginning(ktp), tp.topic)
        elif offset == OFFSET_END:
            self._call("seeking", lambda: self._consumer.seek_to_end(ktp), tp.topic)
        else:
            self._call("seeking", lambda: self._consumer.seek(ktp, offset), tp.topic)

    def position(self, tp: TopicPartition) -> int:
        return int(self._call("reading the position", lambda: self._consumer.position(_ktp(tp)), tp.topic))

    def watermarks(self, tp: TopicPartition, timeout: float = 10.0) -> tuple[int, int]:
        if not self._consumer.partitions_for_topic(tp.topic):  # kafka-python would wait out the timeout
            self._check_describable(tp.topic)
        ktp, ms = _ktp(tp), int(timeout * 1000)
        low = self._call("reading offsets", lambda: self._consumer.beginning_offsets([ktp], timeout_ms=ms), tp.topic)
        high = self._call("reading offsets", lambda: self._consumer.end_offsets([ktp], timeout_ms=ms), tp.topic)
        return int(low[ktp]), int(high[ktp])

    def offsets_for_time(self, partitions: Collection[TopicPartition], timestamp_ms: int,
                         timeout: float = 10.0) -> dict[TopicPartition, int | None]:
        found = self._call("looking up offsets by time", lambda: self._consumer.offsets_for_times(
            {_ktp(tp): timestamp_ms for tp in partitions}, timeout_ms=int(timeout * 1000)))
        return {_tp(k): (int(v.offset) if v is not None else None) for k, v in found.items()}

    def partitions_for(self, topic: str, timeout: float = 10.0) -> list[int]:
        found = self._call(f"describing {topic}", lambda: self._consumer.partitions_for_topic(topic), topic)
        if not found:
            self._check_describable(topic)
        return sorted(found or [])

    def _check_describable(self, topic: str) -> None:
        """kafka-python asks for the metadata of every topic, which leaves out the ones this
        principal may not describe: ask for this one by name to tell a denial from an absence."""
        admin = _build(self._settings, lambda: KafkaAdminClient(**client_config(self._settings)))
        try:
            described = self._call(f"describing {topic}", lambda: admin.describe_topics([topic]), topic)
        finally:
            admin.close()
        for info in described:
            if info.get("name") == topic and info.get("error_code") == _TOPIC_AUTHORIZATION_FAILED:
                raise NotAuthorized(f"not authorised: describing {topic} denied on topic {topic}", f"topic {topic}")

    def topics(self, timeout: float = 10.0) -> set[str]:
        found = self._call("listing topics", self._consumer.topics)
        return {t for t in found if not t.startswith("__")}

    def committed(self, partitions: Collection[TopicPartition],
                  timeout: float = 10.0) -> dict[TopicPartition, int | None]:
        ms = int(timeout * 1000)
        out: dict[TopicPartition, int | None] = {}
        for tp in partitions:
            value = self._call("reading committed offsets",
                               lambda tp=tp: self._consumer.committed(_ktp(tp), timeout_ms=ms))  # type: ignore[misc]
            out[tp] = int(value) if value is not None else None
        return out

    def commit(self, offsets: Mapping[TopicPartition, int], timeout: float = 10.0) -> None:
        if not offsets:
            return
        positions = {_ktp(tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
        self._call("committing offsets",
                   lambda: self._consumer.commit(positions, timeout_ms=int(timeout * 1000)))

    def group_metadata(self) -> GroupMetadata:
        return _KafkaPythonGroup(self._consumer.group_metadata())

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self._consumer.pause(*[_ktp(tp) for tp in partitions])

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        self._consumer.resume(*[_ktp(tp) for tp in partitions])

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        except Exception as exc:  # close never raises (port contract)
            KAFKA_LOG.debug("closing consumer: %s", exc)


class _Isolate:
    """After `CorruptRecordError`: which partition, which offset? Public APIs only.

    kafka-python leaves the failing partition's position on the record it could not
    decode and does not say which partition that is. Every assigned partition with
    records left is read at this consumer's position by a throw-away consumer, one
    record at a time; each one that fails there holds an undecodable record. This
    consumer then seeks one past each of them, which also drops the batch kafka-python
    would otherwise spin on.

    All of them, not the first found: when two partitions both have an undecodable
    record at their position, blaming only one could leave kafka-python holding the
    spent batch of the other at an unchanged position, which its fetcher then loops on
    forever (it neither raises again nor moves on).
    """

    PROBE_SECONDS = 5.0

    def __init__(self, consumer: Any, probe_config: dict[str, Any], settings: KafkaSettings) -> None:
        self._consumer = consumer
        self._probe_config = probe_config
        self._settings = settings

    def undecodable(self, exc: CorruptRecordError) -> list[UndecodableRecord]:
        assigned = sorted(self._consumer.assignment())
        positions = {tp: self._consumer.position(tp) for tp in assigned}
        ends = self._consumer.end_offsets(assigned)
        candidates = [tp for tp in assigned if positions[tp] < ends.get(tp, 0)]
        culprits = self._find(candidates, positions)
        if not culprits:
            raise KafkaOperationFailed(f"a record could not be decoded and no partition owns up to it: {exc}")
        out = []
        for culprit in culprits:
            offset = positions[culprit]
            self._consumer.seek(culprit, offset + 1)
            KAFKA_LOG.debug("skipped undecodable record %s[%s]@%s: %s", culprit.topic, culprit.partition, offset, exc)
            out.append(UndecodableRecord(culprit.topic, culprit.partition, offset, _problem(exc)))
        return out

    def _find(self, candidates: list[KTopicPartition], positions: dict[KTopicPartition, int]) -> list[Any]:
        if len(candidates) == 1:
            return candidates
        probe = _build(self._settings, lambda: KafkaConsumer(**self._probe_config, group_id=None,
                                                               max_poll_records=1))
        found = []
        try:
            for tp in candidates:
                probe.assign([tp])
                probe.seek(tp, positions[tp])
                deadline = Deadline(self.PROBE_SECONDS)
                while not deadline.expired():
                    try:
                        if probe.poll(timeout_ms=200, max_records=1):
                            break  # a decodable record where this consumer stands: not this one
                    except CorruptRecordError:
                        found.append(tp)
                        break
            return found
        finally:
            probe.close(autocommit=False)


def _problem(exc: KError) -> str:
    """kafka-python decodes a batch record by record and cannot step over one it cannot read,
    so the records after a bad one in the same batch are undecodable to it as well."""
    cause = "a header name is not UTF-8" if "UnicodeDecodeError" in str(exc) else "it is corrupt"
    return f"kafka-python cannot decode this record or an earlier one in its batch: {cause} ({exc})"


# -- the engine ----------------------------------------------------------------------------------


class KafkaPythonEngine:
    """Clients on kafka-python that share one set of connection settings."""

    name = "kafka-python"
    capabilities = Capabilities(null_header_values=False, keyless_valueless_records=False,
                                non_utf8_header_names=False, max_record_bytes=MAX_REQUEST_BYTES)

    def __init__(self, settings: KafkaSettings) -> None:
        check_settings(settings)
        self.settings = settings
        self._checked = False
        self._lock = threading.Lock()

    def _preflight(self) -> None:
        """Once per engine: the connection works, or the error that says why not."""
        with self._lock:
            if not self._checked:
                check_connection(self.settings)
                self._checked = True

    def producer(self, *, linger_ms: int = 5, client_id: str | None = None) -> KafkaPythonProducer:
        self._preflight()
        extra: dict[str, Any] = {"linger_ms": linger_ms}
        if client_id:
            extra["client_id"] = client_id
        return KafkaPythonProducer(self.settings, extra)

    def transactional_producer(self, transactional_id: str, *, linger_ms: int = 5,
                               transaction_timeout_ms: int = 60_000) -> KafkaPythonTransactionalProducer:
        self._preflight()
        return KafkaPythonTransactionalProducer(self.settings, transactional_id, {
            "linger_ms": linger_ms, "transaction_timeout_ms": transaction_timeout_ms})

    def consumer(self, *, group_id: str | None = None, group_instance_id: str | None = None,
                 read_committed: bool = True, from_beginning: bool = True, max_poll_records: int = 500,
                 session_timeout_ms: int = 45_000, client_id: str | None = None) -> KafkaPythonConsumer:
        self._preflight()
        return KafkaPythonConsumer(
            self.settings, group_id=group_id, group_instance_id=group_instance_id,
            read_committed=read_committed, from_beginning=from_beginning,
            max_poll_records=max_poll_records, session_timeout_ms=session_timeout_ms, client_id=client_id)

    def admin(self) -> Admin:
        from bus.adapters.kafka._kafka_python_admin import KafkaPythonAdmin

        self._preflight()
        return KafkaPythonAdmin(self.settings)


__all__ = ["KafkaError", "KafkaPythonEngine", "client_config"]

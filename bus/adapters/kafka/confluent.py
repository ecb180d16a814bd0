"""The `confluent` engine: the Kafka port on confluent-kafka (librdkafka). The default.

How it keeps the port's promises:

- Placement: `partitioner=murmur2_random`, the Java client's and kafka-python's
  placement for keyed records (`bus.core.placement`).
- Honest errors: librdkafka retries a wrong password or a failed TLS handshake in
  the background and says so only through `error_cb`; every blocking call here waits
  in short slices and raises what `error_cb` reported (`_Watch`). A new client
  checks its connection first (one metadata request), so settings that cannot work
  fail at once with one line, not at the first send.
- Headers: librdkafka gives header names as C strings. A name that is not UTF-8 makes
  `Message.headers()` raise: that record comes out as an `UndecodableRecord` (it has
  already been consumed, so polling goes on). A name with a NUL byte is cut at the
  NUL by librdkafka on both sides; this engine refuses to send one rather than send
  a different name.
- `consume()` waits for a full batch, so `poll` waits for the first record only and
  then takes what is already fetched.
- Client logs go to the `bus.kafka` logger at DEBUG (`logger` config).
- Transactions: a step that talks to a coordinator runs on a watchdog thread. librdkafka
  can wait past its own timeout for a group coordinator that died
  (`send_offsets_to_transaction`, librdkafka issues 5456 and 5511); a step that overruns
  by `_WEDGE_GRACE` raises `OutcomeUnknown` and the producer is abandoned, never touched
  again, so the caller can build a new one, whose `init` fences the old.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from confluent_kafka import Consumer as CConsumer
from confluent_kafka import KafkaError as CKafkaError
from confluent_kafka import KafkaException, Message
from confluent_kafka import Producer as CProducer
from confluent_kafka import TopicPartition as CTopicPartition

from bus.adapters.kafka._common import (
    KAFKA_LOG,
    MAX_REQUEST_BYTES,
    Deadline,
    check_settings,
    dropped,
    listening,
    no_answer,
    unreachable,
)
from bus.adapters.kafka._confluent_errors import Context, from_error, from_exception, watched
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
from bus.errors import KafkaError, KafkaOperationFailed, OutcomeUnknown

_SLICE = 0.1
"""Seconds a blocking call waits before looking at what `error_cb` reported."""
_WEDGE_GRACE = 5.0
"""Seconds past its own timeout a transactional step may take before it is given up as wedged."""
_OFFSET_INVALID = -1001
"""librdkafka: "no offset given" (assign uses the committed one, position is unknown)."""
_UNDECODABLE_CODES = (CKafkaError._BAD_MSG, CKafkaError._BAD_COMPRESSION, CKafkaError.INVALID_RECORD)
_UNKNOWN = (CKafkaError._UNKNOWN_PARTITION, CKafkaError._UNKNOWN_TOPIC, CKafkaError.UNKNOWN_TOPIC_OR_PART)
"""What librdkafka says of a partition it has no metadata for, which includes a denied topic."""


# -- settings -> librdkafka configuration ----------------------------------------------------


def client_config(settings: KafkaSettings, client_id: str | None = None) -> dict[str, Any]:
    """The librdkafka properties every client of this engine starts from (no callbacks)."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap,
        "client.id": client_id or settings.client_id,
        "security.protocol": settings.security_protocol.lower(),
        "socket.connection.setup.timeout.ms": max(1000, settings.bootstrap_timeout_ms),
        "reconnect.backoff.max.ms": 2000,
    }
    if settings.security_protocol.startswith("SASL"):
        assert settings.sasl_password is not None  # check_settings
        config.update({
            "sasl.mechanism": settings.sasl_mechanism,
            "sasl.username": settings.sasl_username,
            "sasl.password": settings.sasl_password.get_secret_value(),
        })
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        if settings.ssl_cafile is not None:
            config["ssl.ca.location"] = str(settings.ssl_cafile)
        config["ssl.endpoint.identification.algorithm"] = "https"
    return config


class _DebugLog:
    """librdkafka's `logger`: every line to `bus.kafka` at DEBUG, whatever its level."""

    def log(self, level: int, fmt: str, *args: object) -> None:
        KAFKA_LOG.debug(fmt, *args)


_LOG = _DebugLog()


class _Watch:
    """`error_cb`: keeps the first decisive error (see `watched`) for the next call to raise."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.error: KafkaError | None = None
        self.all_down = False

    def __call__(self, err: CKafkaError) -> None:
        KAFKA_LOG.debug("librdkafka reported %s: %s", err.name(), err.str())
        if err.code() == CKafkaError._ALL_BROKERS_DOWN:
            self.all_down = True
        decisive = watched(err, self.settings)
        if decisive is not None and self.error is None:
            self.error = decisive

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error


def _callbacks(watch: _Watch) -> dict[str, Any]:
    return {"error_cb": watch, "logger": _LOG}


def _await_connection(list_topics: Callable[[float], object], serve: Callable[[float], object],
                      watch: _Watch) -> None:
    """One metadata round trip, or the reason there is none (within the bootstrap timeout)."""
    settings = watch.settings
    deadline = Deadline(settings.bootstrap_timeout_ms / 1000)
    while True:
        try:
            list_topics(min(0.5, max(0.05, deadline.remaining())))
            return
        except KafkaException:
            pass
        serve(0)
        watch.raise_if_failed()
        if watch.all_down:
            raise dropped(settings) if listening(settings) else unreachable(settings)
        if deadline.expired():
            raise no_answer(settings)


# -- headers -------------------------------------------------------------------------------------


def _wire_headers(headers: Headers) -> list[tuple[str, bytes | None]] | None:
    """Port headers -> what librdkafka sends: names as text (it has no other way)."""
    if not headers:
        return None
    out = []
    for name, value in headers:
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            raise KafkaOperationFailed(
                f"header name {name!r} is not UTF-8: the confluent engine cannot send it") from None
        if "\x00" in text:
            raise KafkaOperationFailed(
                f"header name {name!r} holds a NUL byte, which librdkafka would cut: not sent")
        out.append((text, value))
    return out


def _read_headers(message: Message) -> Headers:
    """Raises (UnicodeDecodeError, SystemError) when a name is not UTF-8."""
    raw: Any = message.headers()  # consumed messages always hold a list of (str, bytes | None)
    if not raw:
        return ()
    return tuple((k.encode("utf-8"), v) for k, v in raw)


def _coordinates(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed message (always set on those)."""
    return str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)


def _polled(message: Message) -> Polled:
    topic, partition, offset = _coordinates(message)
    try:
        headers = _read_headers(message)
    except Exception as exc:  # the binding raises SystemError wrapping the decode error
        cause = exc.__cause__ or exc.__context__ or exc
        return UndecodableRecord(topic, partition, offset, f"header name is not UTF-8 ({cause})")
    _, timestamp = message.timestamp()
    return Record(topic, partition, offset, timestamp, message.key(), message.value(), headers)


def _is_eof(message: Message) -> bool:
    err = message.error()
    return err is not None and err.code() == CKafkaError._PARTITION_EOF


def _tp(tp: CTopicPartition) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def _ctp(tp: TopicPartition, offset: int = _OFFSET_INVALID) -> CTopicPartition:
    return CTopicPartition(tp.topic, tp.partition, offset)


# -- producers -----------------------------------------------------------------------------------


class _DeliveryFuture:
    """Settled by librdkafka's delivery report, which runs inside some thread's `poll`.

    Waiting is `poll` itself (it returns once a report was served), so the settled mark is a
    plain attribute, written last by `settle`: a `threading.Event` per record cost ~4 µs and
    three more objects for the collector, for each of a batch's outputs.
    """

    __slots__ = ("_delivery", "_error", "_serve", "_settled", "_topic")

    def __init__(self, topic: str, serve: Callable[[float], None]) -> None:
        self._topic = topic
        self._serve = serve
        self._settled = False
        self._delivery: Delivery | None = None
        self._error: KafkaError | None = None

    def settle(self, err: CKafkaError | None, message: Message) -> None:
        if err is None:
            self._delivery = Delivery(*_coordinates(message))
        else:
            self._error = from_error(err, Context(f"sending to {self._topic}", topic=self._topic))
        self._settled = True

    def done(self) -> bool:
        if not self._settled:
            self._serve(0)
        return self._settled

    def result(self, timeout: float) -> Delivery:
        deadline = Deadline(timeout)
        while not self._settled:
            if deadline.expired():
                raise OutcomeUnknown(f"no answer from Kafka for a record sent to {self._topic} "
                                     f"within {timeout:g} s; it may still be stored")
            self._serve(min(_SLICE, deadline.remaining()))
        if self._error is not None:
            raise self._error
        assert self._delivery is not None
        return self._delivery


class ConfluentProducer:
    """Idempotent, acks=all, murmur2 placement."""

    _serve_each_send = True
    """Serve delivery reports after every send, so a caller that never waits still gets them."""

    def __init__(self, settings: KafkaSettings, extra: Mapping[str, Any]) -> None:
        self._watch = _Watch(settings)
        self._producer = CProducer({
            **client_config(settings, extra.get("client.id")),
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "message.max.bytes": MAX_REQUEST_BYTES,
            **extra,
            **_callbacks(self._watch),
        })
        _await_connection(lambda t: self._producer.list_topics(timeout=t), self._producer.poll, self._watch)

    def _serve(self, timeout: float) -> None:
        try:
            self._producer.poll(timeout)
        except KafkaException as exc:
            raise from_exception(exc, Context("waiting for deliveries")) from None
        self._watch.raise_if_failed()

    def send(self, topic: str, value: bytes | None, *, key: bytes | None = None,
             headers: Headers = (), partition: int | None = None) -> _DeliveryFuture:
        future = _DeliveryFuture(topic, self._serve)
        kwargs: dict[str, Any] = {"headers": _wire_headers(headers), "on_delivery": future.settle}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, value, key, **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._serve(_SLICE)
            except KafkaException as exc:
                raise from_exception(exc, Context(f"sending to {topic}", topic=topic)) from None
        if self._serve_each_send:
            self._producer.poll(0)
        return future

    def flush(self, timeout: float) -> None:
        deadline = Deadline(timeout)
        while len(self._producer) > 0:
            if deadline.expired():
                raise OutcomeUnknown(f"{len(self._producer)} record(s) not acknowledged within "
                                     f"{timeout:g} s; they may still be stored")
            try:
                self._producer.flush(min(_SLICE, deadline.remaining()))
            except KafkaException as exc:
                raise from_exception(exc, Context("flushing")) from None
            self._watch.raise_if_failed()

    def close(self, timeout: float = 10.0) -> None:
        try:
            self.flush(timeout)
        except KafkaError as exc:
            KAFKA_LOG.debug("closing producer with records unanswered: %s", exc)
        try:
            self._producer.purge()
            with warnings.catch_warnings():  # a fenced producer warns that it could not abort
                warnings.simplefilter("ignore", RuntimeWarning)
                self._producer.close()
        except Exception as exc:  # close never raises (port contract)
            KAFKA_LOG.debug("closing producer: %s", exc)


class _ConfluentGroup:
    """The consumer group state a transaction commits offsets against."""

    def __init__(self, metadata: object) -> None:
        self.metadata = metadata


class _Watchdog:
    """One daemon thread that runs a transactional producer's coordinator calls, so that the
    caller can stop waiting for one. Reused: a thread per call cost about 70 µs more. A daemon
    (unlike a ThreadPoolExecutor's worker), so a call librdkafka never returns from cannot
    hold up the process's exit."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            call, future = item
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the waiting caller
                future.set_exception(exc)

    def run(self, call: Callable[[], object], timeout: float) -> None:
        """`call()` on the thread; its exception re-raised here; `TimeoutError` after `timeout`."""
        future: Future[object] = Future()
        self._calls.put((call, future))
        future.result(timeout)

    def stop(self) -> None:
        self._calls.put(None)


class ConfluentTransactionalProducer(ConfluentProducer):
    """Each step has librdkafka's own timeout; a step that runs out raises `OutcomeUnknown`."""

    _serve_each_send = False
    """A transaction awaits its deliveries before it commits: serving them once then is
    enough, and a poll per record cost a call into librdkafka for each of a batch's outputs."""

    def __init__(self, settings: KafkaSettings, transactional_id: str, extra: Mapping[str, Any]) -> None:
        self.transactional_id = transactional_id
        self._wedged: str | None = None
        """The step a thread is still stuck in, once one overran: the producer is then abandoned."""
        super().__init__(settings, {**extra, "transactional.id": transactional_id})
        self._watchdog = _Watchdog(f"kafka-txn-{transactional_id}")  # once connected: none left behind

    def _step(self, action: str, call: Callable[[], object], timeout: float | None = None) -> None:
        """Run one transactional call; with a `timeout`, on a watchdog thread (see the module doc)."""
        if self._wedged is not None:
            raise OutcomeUnknown(f"{action}: the producer was abandoned while {self._wedged}; "
                                 "build a new one")
        try:
            if timeout is None:
                call()
            else:
                self._watched(action, call, timeout)
        except KafkaException as exc:
            with contextlib.suppress(KafkaException):
                self._producer.poll(0)  # serves error_cb
            self._watch.raise_if_failed()  # a wrong password explains a timeout better
            raise from_exception(exc, Context(f"{action} (transactional id {self.transactional_id})",
                                              transactional_id=self.transactional_id)) from None

    def _watched(self, action: str, call: Callable[[], object], timeout: float) -> None:
        try:
            self._watchdog.run(call, timeout + _WEDGE_GRACE)
        except FutureTimeout:
            self._wedged = action
            self._watchdog.stop()  # its thread ends if librdkafka ever returns
            KAFKA_LOG.warning("librdkafka did not return from %s within %.1f s (its timeout %.1f s); "
                              "abandoning transactional producer %s", action, timeout + _WEDGE_GRACE,
                              timeout, self.transactional_id)
            raise OutcomeUnknown(f"{action} (transactional id {self.transactional_id}) did not return within "
                                 f"{timeout + _WEDGE_GRACE:.1f} s; the transaction may or may not commit") from None

    def close(self, timeout: float = 10.0) -> None:
        if self._wedged is not None:  # a thread is still inside librdkafka: leave the handle to it
            KAFKA_LOG.debug("not closing abandoned producer %s", self.transactional_id)
            return
        self._watchdog.stop()
        super().close(timeout)

    def init(self, timeout: float) -> None:
        self._step("initialising transactions", lambda: self._producer.init_transactions(timeout), timeout)

    def begin(self) -> None:
        self._step("beginning a transaction", self._producer.begin_transaction)

    def send_offsets(self, offsets: Mapping[TopicPartition, int], group: GroupMetadata,
                     timeout: float) -> None:
        if not isinstance(group, _ConfluentGroup):
            raise KafkaOperationFailed("send_offsets needs the group metadata of a confluent consumer")
        positions = [_ctp(tp, offset) for tp, offset in offsets.items()]
        self._step("sending offsets to the transaction",
                   lambda: self._producer.send_offsets_to_transaction(positions, group.metadata, timeout),
                   timeout)

    def commit(self, timeout: float) -> None:
        self._step("committing the transaction", lambda: self._producer.commit_transaction(timeout), timeout)

    def abort(self, timeout: float) -> None:
        self._step("aborting the transaction", lambda: self._producer.abort_transaction(timeout), timeout)


# -- consumer ------------------------------------------------------------------------------------


class _Rebalance:
    """librdkafka's on_assign/on_revoke/on_lost -> the port's `RebalanceListener`.

    Seeks made by the listener while partitions are being assigned cannot reach
    librdkafka yet (nothing is fetching); they become the offsets of the assignment.
    """

    def __init__(self, consumer: ConfluentConsumer, listener: RebalanceListener | None) -> None:
        self._consumer = consumer
        self._listener = listener

    def on_assign(self, client: CConsumer, partitions: list[CTopicPartition]) -> None:
        tps = [_tp(p) for p in partitions]
        self._consumer._assigning = {}
        try:
            if self._listener is not None:
                self._listener.on_assigned(tps)
            seeks = self._consumer._assigning
        finally:
            self._consumer._assigning = None
        client.assign([_ctp(tp, seeks.get(tp, _OFFSET_INVALID)) for tp in tps])

    def on_revoke(self, client: CConsumer, partitions: list[CTopicPartition]) -> None:
        tps = [_tp(p) for p in partitions]
        self._consumer._forget(tps)
        if self._listener is not None:
            self._listener.on_revoked(tps)

    def on_lost(self, client: CConsumer, partitions: list[CTopicPartition]) -> None:
        tps = [_tp(p) for p in partitions]
        self._consumer._forget(tps)
        if self._listener is not None:
            self._listener.on_lost(tps)


class ConfluentConsumer:
    """read_committed by default, no auto-commit, range assignment, optional static membership."""

    def __init__(self, settings: KafkaSettings, *, group_id: str | None, group_instance_id: str | None,
                 read_committed: bool, from_beginning: bool, max_poll_records: int,
                 session_timeout_ms: int, client_id: str | None) -> None:
        self._watch = _Watch(settings)
        self._group_id = group_id
        self._from_beginning = from_beginning
        self._max_poll_records = max_poll_records
        config: dict[str, Any] = {
            **client_config(settings, client_id),
            # librdkafka needs a group id even to read assigned partitions; that one is never joined.
            "group.id": group_id or f"bus-unjoined-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": session_timeout_ms,
            # End-of-partition events carry the position after skipped transaction markers and
            # aborted records, which librdkafka's position() does not show until a record is read.
            "enable.partition.eof": True,
            **_callbacks(self._watch),
        }
        if group_instance_id:
            config["group.instance.id"] = group_instance_id
        self._consumer = CConsumer(config)
        self._assigning: dict[TopicPartition, int] | None = None
        self._next: dict[TopicPartition, int] = {}
        _await_connection(lambda t: self._consumer.list_topics(timeout=t), self._consumer.poll, self._watch)

    def _context(self, action: str, topic: str | None = None) -> Context:
        return Context(action, topic=topic, group=self._group_id)

    def _forget(self, tps: Collection[TopicPartition]) -> None:
        for tp in tps:
            self._next.pop(tp, None)

    # membership ------------------------------------------------------------------------------

    def subscribe(self, topics: Sequence[str] = (), *, pattern: str | None = None,
                  listener: RebalanceListener | None = None) -> None:
        names = list(topics)
        if pattern is not None:
            names.append(pattern if pattern.startswith("^") else "^" + pattern)
        rebalance = _Rebalance(self, listener)
        try:
            self._consumer.subscribe(names, on_assign=rebalance.on_assign,
                                     on_revoke=rebalance.on_revoke, on_lost=rebalance.on_lost)
        except KafkaException as exc:
            raise from_exception(exc, self._context("subscribing")) from None

    def assign(self, partitions: Sequence[TopicPartition],
               offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._next.clear()
        # Without a group there are no committed offsets to start from: start where the consumer
        # was told to. (Asking for committed offsets would send its never-joined group id to a
        # group coordinator, which a secured cluster refuses: members may use only their own groups.)
        start = _OFFSET_INVALID if self._group_id is not None else \
            OFFSET_BEGINNING if self._from_beginning else OFFSET_END
        given = offsets or {}
        self._consumer.assign([_ctp(tp, given.get(tp, start)) for tp in partitions])
        self._next.update({tp: offset for tp, offset in given.items() if offset >= 0})

    def assignment(self) -> set[TopicPartition]:
        return {_tp(p) for p in self._consumer.assignment()}

    # reading -------------------------------------------------------------------------------------

    def poll(self, timeout: float, max_records: int = 500) -> list[Polled]:
        self._watch.raise_if_failed()
        try:
            first = self._consumer.poll(timeout)
            if first is None:
                self._watch.raise_if_failed()
                return []
            messages = [first]
            if max_records > 1:
                messages += self._consumer.consume(max_records - 1, 0)
        except KafkaException as exc:
            raise from_exception(exc, self._context("polling")) from None
        out: list[Polled] = []
        for message in messages:
            if _is_eof(message):
                tp = TopicPartition(*_coordinates(message)[:2])
                self._next[tp] = max(self._next.get(tp, 0), _coordinates(message)[2])
                continue
            polled = self._convert(message)
            if polled is not None:
                self._next[polled.tp] = polled.offset + 1
                out.append(polled)
        return out

    def _convert(self, message: Message) -> Polled | None:
        err = message.error()
        if err is None:
            return _polled(message)
        if err.code() in _UNDECODABLE_CODES and message.topic() is not None and (message.offset() or -1) >= 0:
            return UndecodableRecord(*_coordinates(message), err.str())
        if err.code() == CKafkaError.GROUP_AUTHORIZATION_FAILED and self._group_id is None:
            # librdkafka looks up a coordinator for the placeholder group id of a consumer that
            # never joins one; a secured cluster refuses it, and nothing here needs it.
            KAFKA_LOG.debug("ignored for a consumer without a group: %s", err.str())
            return None
        if err.code() in (CKafkaError.TOPIC_AUTHORIZATION_FAILED, CKafkaError.GROUP_AUTHORIZATION_FAILED) \
                or err.fatal():
            raise from_error(err, self._context("reading", message.topic()))
        KAFKA_LOG.debug("consumer event %s on %s [%s]: %s", err.name(), message.topic(),
                        message.partition(), err.str())
        return None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._next.pop(tp, None)
        if self._assigning is not None:  # inside on_assigned: becomes the assignment's offset
            self._assigning[tp] = offset
            return
        try:
            self._consumer.seek(_ctp(tp, offset))
        except KafkaException as exc:
            if exc.args[0].code() not in (CKafkaError._STATE, CKafkaError._OUTDATED):
                raise from_exception(exc, self._context(f"seeking {tp.topic}[{tp.partition}]", tp.topic)) from None
            # Assigned but not fetching yet: librdkafka only takes the offset with the assignment.
            self._consumer.incremental_unassign([_ctp(tp)])
            self._consumer.incremental_assign([_ctp(tp, offset)])
        if offset >= 0:
            self._next[tp] = offset

    def position(self, tp: TopicPartition) -> int:
        (current,) = self._consumer.position([_ctp(tp)])
        known = [int(current.offset)] if current.offset >= 0 else []
        if tp in self._next:
            known.append(self._next[tp])
        if known:
            return max(known)
        if self._group_id is not None:
            committed = self.committed([tp]).get(tp)
            if committed is not None:
                return committed
        low, high = self.watermarks(tp)
        return low if self._from_beginning else high

    def watermarks(self, tp: TopicPartition, timeout: float = 10.0) -> tuple[int, int]:
        deadline = Deadline(timeout)
        while True:
            try:
                low, high = self._consumer.get_watermark_offsets(_ctp(tp), timeout=deadline.remaining(),
                                                                 cached=False)
                return int(low), int(high)
            except KafkaException as exc:
                error = exc.args[0] if exc.args and isinstance(exc.args[0], CKafkaError) else None
                if error is not None and error.retriable() and not deadline.expired():
                    # e.g. "Not leader for partition" while a new topic's leader is elected
                    time.sleep(min(0.1, deadline.remaining()))
                    continue
                if error is not None and error.code() in _UNKNOWN:
                    self.partitions_for(tp.topic, timeout)  # NotAuthorized if it is not unknown but denied
                raise from_exception(exc, self._context(f"reading offsets of {tp.topic}", tp.topic)) from None

    def offsets_for_time(self, partitions: Collection[TopicPartition], timestamp_ms: int,
                         timeout: float = 10.0) -> dict[TopicPartition, int | None]:
        try:
            found = self._consumer.offsets_for_times([_ctp(tp, timestamp_ms) for tp in partitions], timeout)
        except KafkaException as exc:
            raise from_exception(exc, self._context("looking up offsets by time")) from None
        return {_tp(p): (int(p.offset) if p.offset >= 0 else None) for p in found}

    def partitions_for(self, topic: str, timeout: float = 10.0) -> list[int]:
        try:
            metadata = self._consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        except KafkaException as exc:
            raise from_exception(exc, self._context(f"describing {topic}", topic)) from None
        if metadata is not None and metadata.error is not None \
                and metadata.error.code() == CKafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise from_error(metadata.error, self._context(f"describing {topic}", topic))
        if metadata is None or metadata.error is not None:
            return []
        return sorted(metadata.partitions)

    def topics(self, timeout: float = 10.0) -> set[str]:
        try:
            metadata = self._consumer.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise from_exception(exc, self._context("listing topics")) from None
        return {name for name in metadata.topics if not name.startswith("__")}

    # offsets -------------------------------------------------------------------------------------

    def committed(self, partitions: Collection[TopicPartition],
                  timeout: float = 10.0) -> dict[TopicPartition, int | None]:
        try:
            found = self._consumer.committed([_ctp(tp) for tp in partitions], timeout=timeout)
        except KafkaException as exc:
            raise from_exception(exc, self._context("reading committed offsets")) from None
        return {_tp(p): (int(p.offset) if p.offset >= 0 else None) for p in found}

    def commit(self, offsets: Mapping[TopicPartition, int], timeout: float = 10.0) -> None:
        if not offsets:
            return
        try:
            results = self._consumer.commit(offsets=[_ctp(tp, o) for tp, o in offsets.items()],
                                            asynchronous=False)
        except KafkaException as exc:
            raise from_exception(exc, self._context("committing offsets")) from None
        for p in results or []:
            if p.error is not None:
                raise from_error(p.error, self._context("committing offsets", p.topic))

    def group_metadata(self) -> GroupMetadata:
        return _ConfluentGroup(self._consumer.consumer_group_metadata())

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self._consumer.pause([_ctp(tp) for tp in partitions])

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        self._consumer.resume([_ctp(tp) for tp in partitions])

    def close(self) -> None:
        try:
            self._consumer.close()
        except Exception as exc:  # close never raises (port contract)
            KAFKA_LOG.debug("closing consumer: %s", exc)


_TXN_RETRY_BACKOFF_MS = 5
"""First retry backoff of a transactional producer (see `transactional_producer`)."""


# -- the engine ----------------------------------------------------------------------------------


class ConfluentEngine:
    """Clients on confluent-kafka that share one set of connection settings."""

    name = "confluent"
    capabilities = Capabilities(nul_in_header_names=False, non_utf8_header_names=False,
                                max_record_bytes=MAX_REQUEST_BYTES)

    def __init__(self, settings: KafkaSettings) -> None:
        check_settings(settings)
        self.settings = settings

    def producer(self, *, linger_ms: int = 5, client_id: str | None = None) -> ConfluentProducer:
        extra: dict[str, Any] = {"linger.ms": linger_ms}
        if client_id:
            extra["client.id"] = client_id
        return ConfluentProducer(self.settings, extra)

    def transactional_producer(self, transactional_id: str, *, linger_ms: int = 5,
                               transaction_timeout_ms: int = 60_000) -> ConfluentTransactionalProducer:
        return ConfluentTransactionalProducer(self.settings, transactional_id, {
            "linger.ms": linger_ms, "transaction.timeout.ms": transaction_timeout_ms,
            # A transaction begun right after a commit meets CONCURRENT_TRANSACTIONS while the
            # coordinator still writes the last one's markers; librdkafka waits retry.backoff.ms
            # before sending the offsets again (100 ms by default: the latency rows' p99). Its
            # backoff grows exponentially up to retry.backoff.max.ms (1 s), so a broker that is
            # down is not hammered.
            "retry.backoff.ms": _TXN_RETRY_BACKOFF_MS,
        })

    def consumer(self, *, group_id: str | None = None, group_instance_id: str | None = None,
                 read_committed: bool = True, from_beginning: bool = True, max_poll_records: int = 500,
                 session_timeout_ms: int = 45_000, client_id: str | None = None) -> ConfluentConsumer:
        return ConfluentConsumer(
            self.settings, group_id=group_id, group_instance_id=group_instance_id,
            read_committed=read_committed, from_beginning=from_beginning,
            max_poll_records=max_poll_records, session_timeout_ms=session_timeout_ms,
            client_id=client_id)

    def admin(self) -> Admin:
        from bus.adapters.kafka._confluent_admin import ConfluentAdmin

        return ConfluentAdmin(self.settings)

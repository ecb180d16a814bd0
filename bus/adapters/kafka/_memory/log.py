"""Partition logs and transactions: what a broker stores and what a reader may see.

Offsets are positions in the log, and transaction markers take an offset as they
do on a real broker, so services that assume offsets are contiguous (last offset
+ 1 == end) are caught here rather than in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from bus.adapters.kafka.records import Record, TopicPartition
from bus.errors import KafkaError


class TxnState(Enum):
    OPEN = "open"
    COMMITTED = "committed"
    ABORTED = "aborted"


@dataclass(eq=False)
class Txn:
    """One transaction of one producer epoch, from `begin` to its marker."""

    transactional_id: str
    epoch: int
    started_ms: int
    timeout_ms: int
    state: TxnState = TxnState.OPEN
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    """The first offset this transaction wrote in each partition: where read_committed readers stop."""
    offsets: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)
    """Consumer positions per group, applied to the group when the transaction commits."""
    failure: KafkaError | None = None
    """Set when a record of the transaction failed: it can only be aborted now."""
    expired: bool = False
    """Aborted by the coordinator because it stayed open past its timeout."""


@dataclass(frozen=True, slots=True)
class DataEntry:
    record: Record
    txn: Txn | None


@dataclass(frozen=True, slots=True)
class ControlEntry:
    """A commit or abort marker: takes an offset, never returned to a reader."""

    commit: bool


@dataclass(frozen=True, slots=True)
class UndecodableEntry:
    """A record no client could decode (injected by a test): returned as `UndecodableRecord`."""

    problem: str


Entry = DataEntry | ControlEntry | UndecodableEntry


class PartitionLog:
    """The entries of one partition, and the transactions still open in it."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.open: dict[Txn, int] = {}
        """Open transactions with records here -> their first offset here."""

    @property
    def end(self) -> int:
        """The log end offset: where the next entry goes."""
        return len(self.entries)

    def stable_end(self) -> int:
        """The last stable offset: read_committed readers read below it, never at or past it."""
        return min(self.open.values(), default=self.end)

    def high(self, read_committed: bool) -> int:
        return self.stable_end() if read_committed else self.end

    def append(self, entry: Entry) -> int:
        offset = len(self.entries)
        self.entries.append(entry)
        if isinstance(entry, DataEntry) and entry.txn is not None and entry.txn not in self.open:
            self.open[entry.txn] = offset
        return offset

    def end_transaction(self, txn: Txn, commit: bool) -> None:
        """Write the marker that settles `txn` here (its state is set by the caller)."""
        if self.open.pop(txn, None) is not None:
            self.entries.append(ControlEntry(commit))

    def visible(self, entry: Entry, read_committed: bool) -> bool:
        """Whether a reader returns this entry (markers never; aborted records only uncommitted)."""
        if isinstance(entry, ControlEntry):
            return False
        if isinstance(entry, DataEntry) and entry.txn is not None and read_committed:
            return entry.txn.state is TxnState.COMMITTED
        return True


@dataclass
class Topic:
    name: str
    logs: list[PartitionLog]
    replication: int
    config: dict[str, str]

    @property
    def partitions(self) -> int:
        return len(self.logs)

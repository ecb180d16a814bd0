"""How a router runs: its identity and every knob, validated where the service is built.

The security invariant lives here, not in the CLI: a replay window shorter than the
maximum age plus the allowed clock skew would let a replay of an old alert, still
fresh enough to pass, slip past a window that already forgot its id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from bus.core.keys import SigningKey
from bus.core.signing import V1_0_ACCEPTED_UNTIL
from bus.core.topology import ROUTER_GROUP, ROUTER_TRANSACTIONAL_PREFIX, ROUTING_PARTITIONS
from bus.core.trust import FreshnessPolicy
from bus.errors import ConfigError

MAX_RECORD_BYTES = 256 * 1024
"""The largest record the router routes (the publishers' limit): larger ones are dead-lettered
in the bounded form, reason `oversized`, without being verified."""


@dataclass(frozen=True)
class RouterIdentity:
    """The router's id in the federation directory and its signing key (receipts, checkpoints)."""

    router_id: str
    signer: SigningKey


@dataclass(frozen=True)
class RouterOptions:
    state_dir: Path = Path("var/router")
    """Instance locks and each instance's task stores live here."""
    instance: str | None = None
    """Explicit instance name; None: the lowest free slot, `<hostname>-<n>`."""
    group_id: str = ROUTER_GROUP
    transactional_prefix: str = ROUTER_TRANSACTIONAL_PREFIX
    batch_size: int = 500
    poll_timeout: float = 0.5
    freshness: FreshnessPolicy = field(default_factory=FreshnessPolicy)
    replay_window: timedelta = timedelta(days=8)
    reload_interval: float = 5.0
    partitions: int = ROUTING_PARTITIONS
    """Partitions of the co-partitioned topics the router creates (when it may create topics)."""
    replication: int | None = None
    """Replication of topics it creates; None: min(3, brokers)."""
    commit_timeout: float = 30.0
    """Seconds each transaction step may take before the router starts over from what Kafka committed."""
    transaction_timeout_ms: int = 20_000
    """How long a dead router's open transaction can hold back readers of its outputs."""
    session_timeout_ms: int = 15_000
    """How long the group waits for a router that stopped before its tasks move (static membership)."""
    checkpoint_every: int = 1000
    """Entries of a chain after which the router appends a signed checkpoint ..."""
    checkpoint_interval: float = 60.0
    """... or seconds, whichever comes first (for a chain with entries not yet covered)."""
    eviction_interval: float = 60.0
    """Seconds between evictions of message ids older than the replay window."""
    restore_timeout: float = 120.0
    """Seconds a task's restore may take (it waits out a dead router's open transaction)."""
    accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL
    """Wire format 1.0 records created at or after this are rejected `unsupported-format`."""
    max_record_bytes: int = MAX_RECORD_BYTES
    create_topics: bool = True
    """Create missing topics (skipped where the principal may not; `bus provision` does it then)."""
    health_host: str = "127.0.0.1"
    health_port: int | None = None
    """Serve /healthz, /readyz and /metrics here (None: no server)."""
    live_after: float = 60.0
    """/healthz fails when the loop has not turned for this many seconds."""

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        covered = self.freshness.max_age + self.freshness.max_future_skew
        if self.replay_window < covered:
            problems.append(("replay_window", f"must cover max age plus max skew ({covered}); "
                                              "a shorter window lets replays of old alerts through"))
        for name in ("batch_size", "checkpoint_every", "partitions"):
            if getattr(self, name) < 1:
                problems.append((name, "must be at least 1"))
        for name in ("poll_timeout", "commit_timeout", "checkpoint_interval", "eviction_interval",
                     "restore_timeout", "reload_interval"):
            if getattr(self, name) <= 0:
                problems.append((name, "must be more than 0 seconds"))
        if self.max_record_bytes < 1024:
            problems.append(("max_record_bytes", "must be at least 1024"))
        if problems:
            raise ConfigError("router options: " + "; ".join(f"{n} {m}" for n, m in problems), problems)

"""The core's CPU per record, in memory, without a broker: seal, unseal, the router end to end.

    python -m bench.core_profile [--count 3000] [--repeat 3] [--top 30]

Seals `count` alerts with distinct ids, times and container numbers (`AlertFactory`),
unseals them (verify + decode + validate), and routes them with a `Router` on the
in-memory engine (`MemoryEngine`: no network, no broker threads), so what is measured is
this process's own Python and native work per record: the part of the router's and the
publisher's cost that the bus itself adds. Figures are CPU (`time.process_time`) per
record, the best of `repeat` runs (the machine is shared: the best run is the one least
disturbed). Then one more run of each under cProfile, printed as a top list by own time,
and the router's stages as shares of its turn (`bench.profile.ROUTER_STAGES`).

Compare runs of this script on one machine with each other; the broker rows of
`make bench` add the Kafka client's cost on top.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROUTER_ID, AlertFactory, new_signer, seal_all
from bench.profile import ROUTER_STAGES, render, shares
from bench.route import write_policy
from bus.adapters.kafka import wire_headers
from bus.adapters.kafka.memory import MemoryEngine
from bus.adapters.policy_file import load_policy
from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.core.keyring import Keyring
from bus.core.keys import SigningKey
from bus.core.models import BaseAlert
from bus.core.sealing import SealedRecord, seal, unseal
from bus.services.router import Router, RouterIdentity, RouterOptions


def cpu_us(fn: Callable[[], Any], n: int, repeat: int) -> float:
    """Best CPU µs per record of `repeat` calls of `fn` (each handles `n` records)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best / n * 1e6


class RouterRun:
    """One router on a fresh in-memory engine with `records` waiting on its input topics."""

    def __init__(self, records: list[SealedRecord], signer: SigningKey, work: Path, router_signer: SigningKey) -> None:
        self.n = len(records)
        self.engine = MemoryEngine()
        ring = Keyring()
        ring.add(signer.member, signer.public)
        policy = load_policy(write_policy(work / "policy.yaml"))
        self.router = Router(self.engine, lambda: (policy, ring), RouterIdentity(ROUTER_ID, router_signer),
                             RouterOptions(state_dir=work / "state", poll_timeout=0.01, checkpoint_interval=3600.0))
        self.router.start()
        while len(self.router.tasks) < 6:
            self.router.turn()
        out = self.engine.producer()
        for r in records:
            out.send(r.topic, r.value, key=r.key, headers=wire_headers(r.headers))

    def handled(self) -> int:
        return self.router.stats.routed + self.router.stats.rejected

    def route_all(self) -> None:
        base = self.handled()
        while self.handled() - base < self.n:
            self.router.turn()

    def close(self) -> None:
        self.router.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    n: int = args.count
    from bus.logs import configure

    configure(json=True, level="WARNING")

    schemas, codes = default_schemas(), default_empact_codes()
    signer, router_signer = new_signer(), SigningKey.generate(ROUTER_ID)
    alerts: list[BaseAlert] = AlertFactory().make(n)
    records = seal_all(alerts, signer)
    ring = Keyring()
    ring.add(signer.member, signer.public)

    def seal_them() -> None:
        for a in alerts:
            seal(a, signer, schemas)

    def unseal_them() -> None:
        for r in records:
            unseal(r.key, r.value, r.headers, ring, schemas, codes)

    def to_avro_them() -> None:
        for a in alerts:
            a.to_avro()

    root = Path(tempfile.mkdtemp(prefix="bus-core-profile-"))
    runs = iter(range(10_000))

    def fresh_router() -> RouterRun:
        work = root / f"run-{next(runs)}"
        work.mkdir()
        return RouterRun(records, signer, work, router_signer)

    def route_best() -> float:
        best = float("inf")
        for _ in range(args.repeat):
            run = fresh_router()
            try:
                start = time.process_time()
                run.route_all()
                best = min(best, time.process_time() - start)
            finally:
                run.close()
        return best / n * 1e6

    figures = {
        "seal": cpu_us(seal_them, n, args.repeat),
        "  of which to_avro": cpu_us(to_avro_them, n, args.repeat),
        "unseal (verify + decode + validate)": cpu_us(unseal_them, n, args.repeat),
        "router, end to end per record": route_best(),
    }
    print(f"CPU µs per record, best of {args.repeat}, {n:,} alerts, in memory")
    for label, value in figures.items():
        print(f"  {label:<40} {value:8.1f}")

    seal_profile = cProfile.Profile()
    seal_profile.runcall(seal_them)
    run = fresh_router()
    try:
        router_profile = cProfile.Profile()
        router_profile.runcall(run.route_all)
    finally:
        run.close()
    print()
    print(render(f"router stages (memory engine), {n:,} alerts", shares(pstats.Stats(router_profile), ROUTER_STAGES)))
    for title, profile in (("seal", seal_profile), ("router", router_profile)):
        print(f"\n-- cProfile, {title}: top {args.top} by own time --")
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()

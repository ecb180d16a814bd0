"""Where the router's and the publisher's time goes: cProfile, grouped by stage.

    .venv/bin/python -m bench.profile [--count 4000] [--engine confluent]

Starts its own broker, routes `count` alerts in this process under cProfile (the same
setup as the route row), publishes `count` alerts under cProfile, and prints the share of
each stage in the profiled total. cProfile slows Python code more than native code (the
signature checks, librdkafka), so read shares, not absolute times, and compare stages
against each other; the per-record CPU figures come from `make bench`.
"""

from __future__ import annotations

import argparse
import pstats
import tempfile
from pathlib import Path

from bench.common import AlertFactory, blast, new_signer, seal_all, tag
from bench.route import bus_route, ensure_router_topics, start_at_end, write_policy

# (label, file suffix, function name): cumulative time of these functions
ROUTER_STAGES = [
    ("route one batch (poll to commit)", "router/service.py", "turn"),
    ("  build the batch's outputs", "router/batch.py", "build"),
    ("    verify + decode + validate the alert (unseal_any)", "core/confidential.py", "unseal_any"),
    ("      authenticate: headers, signing input, Ed25519 verify", "core/sealing.py", "authenticate"),
    ("        Ed25519 verify itself", "core/keys.py", "verify"),
    ("      Avro decode", "core/codec.py", "decode"),
    ("      pydantic validation of the decoded alert", "core/models.py", "from_avro"),
    ("    signed receipt to the producer", "router/batch.py", "_receipt"),
    ("      Ed25519 sign", "core/keys.py", "sign"),
    ("    audit entry (canonical JSON, hash chain)", "router/batch.py", "_audit"),
    ("  send outputs, await deliveries, offsets, commit", "router/service.py", "_commit"),
    ("  poll (consumer)", "kafka/confluent.py", "poll"),
    ("  task stores updated after commit (SQLite)", "router/service.py", "_apply"),
]
PUBLISHER_STAGES = [
    ("publish_many", "services/publisher.py", "publish_many"),
    ("  seal (encode, headers, sign)", "core/sealing.py", "seal"),
    ("    Avro encode", "core/codec.py", "encode"),
    ("    to_avro (model -> record)", "core/models.py", "to_avro"),
    ("    Ed25519 sign", "core/keys.py", "sign"),
    ("  send through the port", "kafka/confluent.py", "send"),
    ("  flush and await deliveries", "kafka/confluent.py", "flush"),
]


def shares(stats: pstats.Stats, stages: list[tuple[str, str, str]]) -> list[tuple[str, float, int]]:
    raw = stats.stats  # type: ignore[attr-defined]
    cumulative: dict[tuple[str, str], tuple[float, int]] = {}
    for (filename, _, name), (_, ncalls, _, cum, _) in raw.items():
        for _, suffix, fn in stages:
            if name == fn and filename.endswith(suffix):
                total, calls = cumulative.get((suffix, fn), (0.0, 0))
                cumulative[(suffix, fn)] = (total + cum, calls + ncalls)
    top = cumulative.get((stages[0][1], stages[0][2]), (0.0, 0))[0] or 1.0
    return [(label, cumulative.get((s, f), (0.0, 0))[0] / top, cumulative.get((s, f), (0.0, 0))[1])
            for label, s, f in stages]


def render(title: str, rows: list[tuple[str, float, int]]) -> str:
    lines = [title, f"{'stage':<62} {'share':>7} {'calls':>8}"]
    lines += [f"{label:<62} {share * 100:6.1f}% {calls:>8,}" for label, share, calls in rows]
    return "\n".join(lines)


def main() -> None:
    import cProfile

    from bus.adapters.broker import LocalBroker, free_port
    from bus.composition import Bus
    from bus.config import KafkaSettings
    from bus.logs import configure

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--engine", default="confluent", choices=["confluent", "kafka-python"])
    args = parser.parse_args()
    configure(json=True, level="WARNING")
    work = Path(tempfile.mkdtemp(prefix="bus-bench-profile-"))
    broker = LocalBroker(work / "broker", port=free_port(), controller_port=free_port(), heap="512m")
    broker.start()
    try:
        settings = KafkaSettings(bootstrap=broker.bootstrap, engine=args.engine)
        bus = Bus(settings)
        ensure_router_topics(bus.engine)
        group = f"bench-profile-{tag()}"
        start_at_end(bus.engine, group)
        signer = new_signer()
        blast(settings.bootstrap, seal_all(AlertFactory().make(args.count), signer))
        (work / "route").mkdir()
        router_prof = work / "router.prof"
        bus_route(bus, signer, write_policy(work / "route" / "policy.yaml"), work / "state", group, args.count,
                  profile=router_prof)
        alerts = AlertFactory().make(args.count)
        with bus.publisher(signer) as publisher:
            publisher.publish_many(alerts[:100])
            profiler = cProfile.Profile()
            profiler.runcall(publisher.publish_many, alerts[100:])
    finally:
        broker.stop()
    print(render(f"router ({args.engine}), {args.count:,} alerts", shares(pstats.Stats(str(router_prof)),
                                                                              ROUTER_STAGES)))
    print()
    print(render(f"publisher ({args.engine})", shares(pstats.Stats(profiler), PUBLISHER_STAGES)))


if __name__ == "__main__":
    main()

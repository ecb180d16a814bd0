"""`make bench`: every row in one run, on one local broker, ratios against raw clients.

    .venv/bin/python -m bench [--count 10000] [--quick] [--out bench/results/latest.json]
    .venv/bin/python -m bench --only latency [--rates 100,500,1000] [--seconds 12]

`--only latency` runs only the end-to-end latency rows (one router process, its own broker),
in a minute or two, and writes bench/results/latency.json unless --out says otherwise.

Starts its own single-node broker (512 MB heap) in a temporary directory and stops it at
the end. The machine is shared and noisy: compare the ratios and the CPU per record of
one run, not absolute rates across runs. See bench/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import REPO, load_average, machine

ENGINES = ("confluent", "kafka-python")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench import crypto_bench
    from bench.fleet import bench_fleet
    from bench.produce import bench_produce
    from bench.route import bench_route
    from bus.adapters.broker import LocalBroker, free_port
    from bus.config import KafkaSettings
    from bus.logs import configure

    configure(json=True, level="WARNING")  # per-batch router logs would measure the terminal
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                               "load_before": load_average(), "count": args.count}
    started = time.monotonic()
    if args.only == "latency":
        return _run_latency(args, results, started)
    print("crypto (in memory)", flush=True)
    results["crypto"] = [asdict(row) for row in crypto_bench.run(args.crypto_count)]
    work = Path(tempfile.mkdtemp(prefix="bus-bench-"))
    broker = LocalBroker(work / "broker", port=free_port(), controller_port=free_port(), heap="512m")
    broker.start()
    try:
        settings = KafkaSettings(bootstrap=broker.bootstrap)
        results["produce"], results["route"] = [], []
        for engine in ENGINES:
            print(f"produce, {engine}", flush=True)
            results["produce"].append(bench_produce(settings, engine, args.count))
        for engine in ENGINES:
            print(f"route, {engine}", flush=True)
            results["route"].append(bench_route(settings, engine, args.count, work / f"route-{engine}"))
        if not args.skip_fleet:
            print("router processes (RSS, restart, latency, scaling)", flush=True)
            history = (1000, 10_000) if args.quick else (10_000, 100_000)
            results["fleet"] = bench_fleet(settings, work / "fleet", history=history,
                                           burst=2000 if args.quick else 20_000,
                                           latency_seconds=3 if args.quick else 12,
                                           log=lambda m: print(m, flush=True))
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = load_average()
    results["minutes"] = round((time.monotonic() - started) / 60, 1)
    return results


def _run_latency(args: argparse.Namespace, results: dict[str, Any], started: float) -> dict[str, Any]:
    from bench.fleet import bench_latency
    from bus.adapters.broker import LocalBroker, free_port
    from bus.config import KafkaSettings

    work = Path(tempfile.mkdtemp(prefix="bus-bench-"))
    broker = LocalBroker(work / "broker", port=free_port(), controller_port=free_port(), heap="512m")
    broker.start()
    try:
        print("router process latency", flush=True)
        results["fleet"] = bench_latency(KafkaSettings(bootstrap=broker.bootstrap), work / "fleet",
                                         seconds=args.seconds, rates=args.rates, log=lambda m: print(m, flush=True))
    finally:
        broker.stop()
        if args.keep:
            print(f"kept {work} (router logs in fleet/logs)", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = load_average()
    results["minutes"] = round((time.monotonic() - started) / 60, 1)
    return results


def _r(v: float) -> str:
    return f"{v:,.0f}"


def table(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB; Python {m['python']}; "
             f"Kafka {m['kafka_broker']} (one local KRaft node, 512 MB heap); confluent-kafka {m['confluent_kafka']} "
             f"(librdkafka {m['librdkafka']}); kafka-python {m['kafka_python']}. "
             f"Load average before/after: {res['load_before'][0]:.2f} / {res['load_after'][0]:.2f}. "
             f"{res['minutes']} min."]
    if res.get("produce"):
        lines += ["", "| row | engine | raw | bus | bus / raw | CPU µs/record raw | CPU µs/record bus |",
                  "|---|---|---|---|---|---|---|"]
    for row in res.get("produce", []):
        lines.append(f"| produce (signed publish vs raw send of the same bytes) | {row['engine']} "
                     f"| {_r(row['raw_per_s'])}/s | {_r(row['bus_per_s'])}/s | {row['ratio']:.2f} "
                     f"| {row['raw_cpu_us']:.0f} | {row['bus_cpu_us']:.0f} |")
    for row in res.get("route", []):
        lines.append(f"| route, 6 partitions (router vs raw transactional copy) | {row['engine']} "
                     f"| {_r(row['raw_per_s'])}/s | {_r(row['bus_per_s'])}/s | {row['ratio']:.2f} "
                     f"| {row['raw_cpu_us']:.0f} | {row['bus_cpu_us']:.0f} |")
    if res.get("route"):
        conf, kp = (next(r for r in res["route"] if r["engine"] == e) for e in ENGINES)
        lines += ["", f"Router on confluent / router on kafka-python: {conf['bus_per_s'] / kp['bus_per_s']:.2f}x "
                      f"(CPU per record: {kp['bus_cpu_us'] / conf['bus_cpu_us']:.2f}x less)."]
    fleet = res.get("fleet")
    if fleet:
        lines += ["", "| end-to-end latency (produce -> feed, read_committed) | achieved | p50 raw / bus "
                      "| p95 raw / bus | p99 raw / bus | max bus | CPU (cores) raw / router "
                      "| batches raw / bus: mean records, mean ms |", "|---|---|---|---|---|---|---|---|"]
        for row in fleet["latency"]:
            raw = row.get("raw")

            def pair(key: str, raw: dict[str, Any] | None = raw, row: dict[str, Any] = row) -> str:
                return f"{raw[key]:.1f} / {row[key]:.1f} ms" if raw else f"{row[key]:.1f} ms"

            cpu = (f"{raw['router_cpu_share']:.2f} / " if raw else "") + f"{row['router_cpu_share']:.2f}"
            batches = (f"{raw['mean_batch_records']:.1f}, {raw['mean_batch_ms']:.0f} ms / " if raw else "") + \
                f"{row['mean_batch_records']:.1f}, {row['mean_batch_ms']:.0f} ms"
            lines.append(f"| {row['offered_per_s']:,}/s offered, {row['alerts']:,} alerts "
                         f"| {_r(row['achieved_per_s'])}/s | {pair('p50_ms')} | {pair('p95_ms')} | {pair('p99_ms')} "
                         f"| {row['max_ms']:.0f} ms | {cpu} | {batches} |")
    if fleet and "rss" in fleet:
        rss, restart = fleet["rss"], fleet["restart"]
        lines += ["", "| router process | value |", "|---|---|",
                  f"| RSS after start / at 10k / {rss['alerts'] // 2:,} / {rss['alerts']:,} alerts (peak) "
                  f"| {rss['start_mib']:.0f} / {rss.get('at_10k_mib', 0):.0f} / {rss['at_half_mib']:.0f} / "
                  f"{rss['at_end_mib']:.0f} MiB ({rss['peak_mib']:.0f}) |",
                  f"| RSS growth from {rss['alerts'] // 2:,} to {rss['alerts']:,} "
                  f"| {rss['growth_half_to_end'] * 100:+.1f} % |",
                  f"| routed (process, backlog of {rss['alerts']:,}) | {_r(rss['routed_per_s'])}/s, "
                  f"{rss['cpu_us_per_record']:.0f} µs CPU/record |",
                  f"| restart to ready after {restart['history_routed'][0]:,} / {restart['history_routed'][1]:,} "
                  f"routed | {restart['after_small_s']:.2f} s / {restart['after_large_s']:.2f} s |",
                  f"| of which: spawn to health server up (imports, key, clients) "
                  f"| {restart['listening_s'][0]:.2f} s / {restart['listening_s'][1]:.2f} s |",
                  f"| of which: restoring the 6 tasks (`bus_router_restore_seconds`) "
                  f"| {restart['restore_s'][0]:.2f} s / {restart['restore_s'][1]:.2f} s |"]
        for row in fleet["scaling"]:
            lines.append(f"| {row['routers']} router(s), burst of {row['alerts']:,} | {_r(row['per_s'])}/s, "
                         f"{row['cpu_us_per_record']:.0f} µs CPU/record, cores used per router "
                         f"{' + '.join(f'{c:.2f}' for c in row['cpu_share_per_router'])} |")
        lines.append(f"| 2 routers / 1 router | {fleet['scaling_ratio']:.2f}x |")
    if not res.get("crypto"):
        return "\n".join(lines)
    lines += ["", "| crypto, in memory | recipients | per second | value bytes |", "|---|---|---|---|"]
    for row in res["crypto"]:
        lines.append(f"| {row['label']} | {row['recipients'] or '-'} | {_r(row['per_second'])} "
                     f"| {_r(row['value_bytes'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000, help="alerts per produce and route row")
    parser.add_argument("--crypto-count", type=int, default=500, help="alerts per crypto row")
    parser.add_argument("--quick", action="store_true", help="small router-process rows (a smoke run)")
    parser.add_argument("--skip-fleet", action="store_true", help="no router-process rows")
    parser.add_argument("--only", choices=["latency"], help="run only these rows (latency: about 2 minutes)")
    parser.add_argument("--rates", type=lambda v: tuple(int(x) for x in v.split(",")), default=(100, 500, 1000),
                        help="offered alerts per second of the latency rows, comma-separated")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds of load per latency row (--only)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (broker, router logs) (--only)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default bench/results/latest.json, with --only bench/results/<only>.json)")
    args = parser.parse_args()
    if args.out is None:
        args.out = REPO / f"bench/results/{args.only or 'latest'}.json"
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(table(results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()

"""`make demo`: the whole flow on the embedded default (a local broker).

broker -> federation (authority, member keys, router key) -> two routers sharing
the work -> three members publish the example alerts (TLP:RED and H2/H3 ones
encrypted to their recipients, and one forgery) and wait for their receipts -> two
partners' feeds, verified (and decrypted where addressed to them), differ because
of the policy -> the TLP:RED alert is read by a named recipient and refused to a member
that is not named, given the same record -> a recipient acknowledges an alert, its originator sees it -> the
audit chains and their signed checkpoints verify, for the auditor and for a member.
Every step uses the real `bus` command, so the output doubles as a tour of the CLI.

It runs from a checkout (`make demo`) and from an installed wheel alike: the
example alerts and the default policy are package data (`bus.adapters.resources`),
and `--dir` is relative to the current directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule

from bus.adapters import resources

console = Console()

# (member, example alert file) published in the demo
PUBLICATIONS = [
    ("NL-CUSTOMS", "suspicious-container.json"),
    ("NL-CUSTOMS", "batch.jsonl"),
    ("BE-FEDPOL", "corruption-indicator.json"),
    ("PORT-ANTWERP-BRUGES", "suspicious-container.json"),
    ("BE-FEDPOL", "operation-notice.json"),
]
FEEDS = ["feed.europol", "feed.be-customs"]


def step(title: str) -> None:
    console.print(Rule(f"[bold cyan]{title}"))


def bus_command(executable: str = sys.executable, search_path: str | None = None, cwd: Path | None = None) -> str:
    """How the user types this interpreter's `bus`: `bus` when PATH finds that one, else its
    path, relative when under the current folder (`.venv/bin/bus` after `make demo`, whose
    virtualenv is not activated in the user's shell)."""
    script = Path(executable).parent / "bus"
    found = shutil.which("bus", path=search_path)
    if found is not None and Path(found).resolve() == script.resolve():
        return "bus"
    try:
        return str(script.relative_to(cwd or Path.cwd()))
    except ValueError:
        return str(script)


def path_hint(command: str) -> str | None:
    """What to tell a user whose shell would not find `bus`, or None if it would."""
    if command == "bus":
        return None
    activate = Path(command).with_name("activate")
    return (f"`bus` is not on your PATH: run `source {activate}` to put it there, "
            f"or call `{command}` as the commands above do")


BUS = bus_command()


def shipped(stack: ExitStack, resource: resources.Traversable) -> str:
    """A shipped file as a path for the `bus` command: relative when it lies under the
    current directory (a checkout shows `examples/alerts/...`), absolute otherwise."""
    path = stack.enter_context(resources.as_path(resource)).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def bus(*args: str, env: dict[str, str], check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    console.print(f"[dim]$ {BUS} {' '.join(args)}[/]", highlight=False)
    result = subprocess.run([sys.executable, "-m", "bus", *args], env=env, text=True, capture_output=True)
    if not quiet:
        sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if check and result.returncode != 0:
        raise SystemExit(f"demo step failed: bus {' '.join(args)} (exit {result.returncode})")
    return result


def forged_alert(fed_dir: Path, out: Path) -> Path:
    """An alert claiming to come from NL-CUSTOMS, signed by a key the directory does not know."""
    from bus.adapters.keystore import generate_keypair

    generate_keypair("NL-CUSTOMS", out / "forger", overwrite=True)
    return out / "forger" / "NL-CUSTOMS.key"


def as_user(env: dict[str, str], user: str, password: str) -> dict[str, str]:
    """The environment a SCRAM principal's client would run with."""
    return {**env, "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "BUS_SASL_USERNAME": user,
            "BUS_SASL_PASSWORD": password}


def demo_bus(env: dict[str, str]) -> Any:
    """The composition root for the clients the demo runs itself, as `env` would configure them."""
    from bus.composition import bootstrap

    return bootstrap(
        bootstrap=env["BUS_BOOTSTRAP"], security_protocol=env.get("BUS_SECURITY_PROTOCOL"),
        sasl_username=env.get("BUS_SASL_USERNAME"), sasl_password=env.get("BUS_SASL_PASSWORD"),
        engine=env.get("BUS_KAFKA_ENGINE"),
    )


def wait_for_audit(env: dict[str, str], expected: int, timeout: float = 90.0) -> int:
    """Decision entries on the audit chains, once there are `expected` (or the timeout passed)."""
    from bus.adapters.kafka import Record
    from bus.core.topology import AUDIT_TOPIC

    bus = demo_bus(env)
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = sum(1 for r in bus.read_to_end(AUDIT_TOPIC, timeout=max(5.0, deadline - time.monotonic()))
                    if isinstance(r, Record) and json.loads(r.value or b"{}").get("kind") == "decision")
        if count >= expected:
            return count
        time.sleep(1.0)
    return count


def wait_for_ack(receipts_json: Callable[[], str], message_id: str, timeout: float = 60.0) -> None:
    """Until the originator's receipts hold the acknowledgement of `message_id` (the router forwards it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in receipts_json().splitlines() if line.strip()]
        if any(r.get("kind") == "ack" and r.get("message_id") == message_id for r in lines):
            return
        time.sleep(0.5)
    raise SystemExit(f"demo step failed: no acknowledgement of {message_id} reached its originator in {timeout:.0f} s")


def wait_for_routers(logs: list[Path], timeout: float = 120.0) -> None:
    """Until every router has restored its share of the tasks (it logs "tasks restored")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(log.exists() and "tasks restored" in log.read_text(errors="replace") for log in logs):
            return
        time.sleep(0.5)
    raise SystemExit(f"demo step failed: the routers did not start (see {', '.join(map(str, logs))})")


def dead_letters(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """(reason, detail, source) of every dead letter, as the router recorded them."""
    from bus.adapters.kafka import Record
    from bus.core.topology import DLQ_TOPIC

    out = []
    for r in demo_bus(env).read_to_end(DLQ_TOPIC):
        if isinstance(r, Record):
            h = {k: (v or b"").decode("utf-8", "replace") for k, v in r.headers}
            source = f"{h.get(b'bus_source_topic')}[{h.get(b'bus_source_partition')}]@{h.get(b'bus_source_offset')}"
            out.append((h.get(b"bus_reject_reason", "?"), h.get(b"bus_reject_detail", ""), source))
    return out


CONFIDENTIAL_FEED = "feed.europol"
OUTSIDERS = ["NL-CUSTOMS", "PORT-ANTWERP-BRUGES", "BE-FEDPOL"]
"""Members, one of which is not named on the TLP:RED alert, to try to read it."""


def tail_json(feed: str, env: dict[str, str], trust: list[str], *extra: str) -> list[dict[str, Any]]:
    result = bus("tail", feed, "--from-beginning", "--json", *trust, *extra, env=env, quiet=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def show_confidentiality(keys: Path, trust: list[str], *, reader_env: dict[str, str],
                         operator_env: dict[str, str], feed: str = CONFIDENTIAL_FEED) -> bool:
    """The TLP:RED alert reached Europol encrypted: Europol (named) decrypts it; a member that is
    not named, handed the very same record, cannot, and is told why. False if either fails.
    `keys`: the members' key files (`<MEMBER>.enc.key`)."""
    step("6b. Confidentiality: the TLP:RED alert is encrypted to the members it names; no one else "
         "can read it")
    reader_key = ["--decrypt-key", str(keys / "EUROPOL.enc.key")]
    red = [r for r in tail_json(feed, reader_env, trust, *reader_key)
           if r.get("encrypted") and (r.get("alert") or {}).get("header", {}).get("tlp") == "RED"]
    if not red:
        console.print(f"[red]no encrypted TLP:RED alert on {feed} that EUROPOL could decrypt[/]")
        return False
    record = red[0]
    header = record["alert"]["header"]
    where = (record["partition"], record["offset"])
    console.print(f"[bold]{header['alert_type']} {header['message_id']} from {header['producer']}, TLP:RED "
                  f"{'/'.join(header['handling_codes'])}, encrypted for {', '.join(header['release_to'])} "
                  f"({feed} partition {where[0]} offset {where[1]}). EUROPOL, a named recipient, "
                  "decrypts it with its own key:[/]", highlight=False)
    bus("tail", feed, "--from-beginning", "--type", header["alert_type"], *trust, *reader_key, env=reader_env)
    outsider = next((m for m in OUTSIDERS if m not in header["release_to"]), None)
    if outsider is None:
        console.print(f"[red]the TLP:RED alert names every member the demo would try: {OUTSIDERS}[/]")
        return False
    outsider_key = ["--decrypt-key", str(keys / f"{outsider}.enc.key")]
    console.print(f"[bold]{outsider} is not named. Handed the same record (read here by the operator, who "
                  f"has no key at all), it tries its own key:[/]", highlight=False)
    bus("tail", feed, "--from-beginning", "--type", header["alert_type"], *trust, *outsider_key, env=operator_env,
        check=False)
    same = [r for r in tail_json(feed, operator_env, trust, *outsider_key) if (r["partition"], r["offset"]) == where]
    if len(same) != 1 or same[0].get("verified") or same[0].get("reason") != "not-a-recipient" \
            or "alert" in same[0]:
        console.print(f"[red]confidentiality failure: {outsider} was not refused as not-a-recipient: {same}[/]")
        return False
    console.print(f"  {outsider}: [bold]{same[0]['reason']}[/] — {same[0]['error']}", highlight=False)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("var/demo"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("BUS_DEMO_PORT", "9092")))
    parser.add_argument("--keep", action="store_true", help="leave the broker running afterwards")
    parser.add_argument("--secure", action="store_true",
                        help="SCRAM + ACLs: provision users and grants, every client as its own principal")
    args = parser.parse_args(argv)

    from bus.adapters.broker import LocalBroker, free_port, port_is_open

    work = args.dir.resolve()
    broker = LocalBroker(work / "broker", port=args.port, secure=args.secure)
    broker.stop()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    port = args.port
    if port_is_open("127.0.0.1", port):
        port = free_port()
        console.print(f"[yellow]port {args.port} is busy; using {port}[/]")
    env = {**os.environ, "BUS_BOOTSTRAP": f"127.0.0.1:{port}", "NO_COLOR": os.environ.get("NO_COLOR", ""),
           "COLUMNS": os.environ.get("COLUMNS", "160")}
    fed = work / "federation"
    routers: list[subprocess.Popen[bytes]] = []
    stack = ExitStack()
    policy = shipped(stack, resources.default_policy())
    examples = {name: shipped(stack, resources.example_alert(name)) for _, name in PUBLICATIONS}
    try:
        step("1. Start a local Apache Kafka broker (KRaft, official jars, no Docker)")
        bus("broker", "start", "--dir", str(work / "broker"), "--port", str(port),
            *(["--secure"] if args.secure else []), env=env)

        step("2. Create the federation: authority key, member keys, signed directory")
        bus("federation", "demo", "--out", str(fed), env=env, quiet=True)
        bus("federation", "verify", "--file", str(fed / "federation.yaml"),
            "--authority-pub", str(fed / "authority.pub"), env=env)
        trust = ["--federation", str(fed / "federation.yaml"), "--authority-pub", str(fed / "authority.pub")]

        admin_env = auditor_env = env
        def plain_env(member: str) -> dict[str, str]:
            return env

        user_env: Callable[[str], dict[str, str]] = plain_env
        if args.secure:
            from bus.adapters.secrets_file import SecretsFile

            step("2b. Provision topics, one SCRAM user per member, and ACLs (broker-enforced isolation)")
            admin_env = as_user(env, "admin", broker.admin_password())
            secrets_path = work / "secrets.yaml"
            bus("provision", *trust, "--policy", policy, "--secrets", str(secrets_path),
                "--generate-missing", env=admin_env)
            secrets = SecretsFile(secrets_path)

            def scram_env(member: str) -> dict[str, str]:
                password = secrets.password(member.lower())
                assert password is not None, member
                return as_user(env, member.lower(), password.get_secret_value())

            user_env = scram_env

            auditor_env = user_env("SVC-AUDITOR")

        step("3. Start two policy routers (policies/default.yaml): they share the routing tasks")
        bus("policy", "validate", "--policy", policy, env=env)
        router_key = ["--router-id", "EPA-ROUTER-1", "--router-key", str(fed / "router" / "EPA-ROUTER-1.key")]
        for n in (1, 2):
            console.print(f"[dim]$ {BUS} router run --policy {policy} {' '.join(trust)} {' '.join(router_key)} "
                          f"--state-dir {work / 'router'}  (logs: {work / f'router-{n}.log'})[/]", highlight=False)
            with open(work / f"router-{n}.log", "wb") as log:
                routers.append(subprocess.Popen(
                    [sys.executable, "-m", "bus", "router", "run", "--policy", policy, *trust, *router_key,
                     "--state-dir", str(work / "router"), "--checkpoint-interval", "5"],
                    env=user_env("SVC-ROUTER"), stdout=log, stderr=subprocess.STDOUT,
                ))

        wait_for_routers([work / f"router-{n}.log" for n in (1, 2)])

        step("4. Members publish signed alerts and wait for the router's receipts")
        published = 0
        for member, name in PUBLICATIONS:
            # TLP:RED and H2/H3 alerts are encrypted to their release_to (the default); the
            # router routes them on their clear routing facts, without decrypting.
            result = bus("publish", "--file", examples[name], "--member", member, *trust, "--wait",
                         "--timeout", "90", "--key", str(fed / "keys" / f"{member}.key"), env=user_env(member))
            published += sum(1 for line in result.stdout.splitlines() if "partition=" in line)
        console.print("[bold]A forger signs an alert as NL-CUSTOMS with a key the federation does not know "
                      "(no receipt: nothing proves who sent it):[/]")
        forged_key = forged_alert(fed, work)
        bus("publish", "--file", examples["suspicious-container.json"], "--member", "NL-CUSTOMS", *trust,
            "--key", str(forged_key), env=user_env("NL-CUSTOMS"))
        published += 1

        step("5. The routers decide; every decision is audited")
        seen = wait_for_audit(auditor_env, published)
        if seen < published:
            console.print(f"[red]only {seen} of {published} alerts were routed; see {work}/router-*.log[/]")
            return 1
        bus("audit", "tail", env=auditor_env)

        for feed in FEEDS:
            reader = feed.removeprefix("feed.").upper()
            step(f"6. A liaison officer of {reader} tails {feed} (verified end to end, decrypted where "
                 "addressed to it)")
            bus("tail", feed, "--from-beginning", *trust, "--decrypt-key", str(fed / "keys" / f"{reader}.enc.key"),
                env=user_env(reader))
        if args.secure:
            console.print("[bold]BE-CUSTOMS tries to read Europol's feed; the broker refuses:[/]")
            denied = bus("tail", "feed.europol", "--from-beginning", *trust, env=user_env("BE-CUSTOMS"),
                         check=False)
            if denied.returncode == 0:
                console.print("[red]isolation failure: BE-CUSTOMS could read feed.europol[/]")
                return 1

        if not show_confidentiality(fed / "keys", trust, reader_env=user_env("EUROPOL"), operator_env=admin_env):
            return 1

        step("7. Rejected records are kept on dlq.rejected, with the router's reason")
        for reason, detail, source in dead_letters(admin_env):
            console.print(f"  {source}: [bold]{reason}[/] — {detail}", highlight=False)

        step("8. EUROPOL acknowledges an alert it received; its originator sees that in its receipts")
        first = json.loads(bus("tail", "feed.europol", "--from-beginning", "--json", *trust,
                               "--decrypt-key", str(fed / "keys" / "EUROPOL.enc.key"), env=user_env("EUROPOL"),
                               quiet=True).stdout.splitlines()[0])
        message_id = first["alert"]["header"]["message_id"]
        originator = first["alert"]["header"]["producer"]
        bus("ack", message_id, "--status", "useful", "--note", "matched an open case", "--member", "EUROPOL",
            "--key", str(fed / "keys" / "EUROPOL.key"), env=user_env("EUROPOL"))
        wait_for_ack(lambda: bus("receipts", "--member", originator, *trust, "--json", env=user_env(originator),
                                 quiet=True).stdout, message_id)
        bus("receipts", "--member", originator, *trust, env=user_env(originator))

        step("9. Verify the audit chains and their signed checkpoints: the auditor, then a member alone")
        for r in routers:  # a router that stops cleanly signs a checkpoint over what it has not covered yet
            r.send_signal(signal.SIGTERM)
        for r in routers:
            r.wait(timeout=60)
        bus("audit", "verify", *trust, env=auditor_env)
        bus("audit", "verify", "--member", originator, *trust, env=user_env(originator))
        console.print("[bold green]demo complete[/]")
        return 0
    finally:
        for r in routers:
            if r.poll() is None:
                r.send_signal(signal.SIGTERM)
                try:
                    r.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    r.kill()
        if args.keep:
            console.print(f"broker left running at 127.0.0.1:{port}; stop it with `make demo-stop`")
            if not args.secure:
                console.print(f"try: BUS_BOOTSTRAP=127.0.0.1:{port} {BUS} tail feed.europol --from-beginning "
                              f"--federation {fed / 'federation.yaml'} --authority-pub {fed / 'authority.pub'}",
                              highlight=False)
        else:
            broker.stop()
        stack.close()
        if (hint := path_hint(BUS)) is not None:
            console.print(hint, highlight=False)


if __name__ == "__main__":
    raise SystemExit(main())

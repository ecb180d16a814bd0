"""`bus tail` for a liaison officer, on the real broker, through the CLI.

The table fits the terminal (COLUMNS), rows come in creation-time order across
partitions, TLP and handling codes are shown, `--since` takes durations and ISO
times, `--group` resumes where the officer left off (under the member's own prefix
on a secured cluster), and `dlq.rejected` shows the router's recorded verdict.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from stdnum import iso6346

from bus.adapters.federation_file import make_demo
from bus.adapters.kafka import TopicPartition, open_engine
from bus.adapters.keystore import generate_keypair
from bus.config import KafkaSettings
from bus.core.keys import SigningKey
from bus.core.sealing import SealedRecord, seal
from bus.core.topology import DLQ_TOPIC, feed_topic
from bus.errors import InvalidInput
from tests.helpers import BUS, EXAMPLES, REPO, SCHEMAS, create_topic, example, publish_raw, run_bus, wait_for

H3 = ("No operational action without prior consultation of the Dutch customs liaison officer at Europol; "
      "not for use in judicial proceedings without the written consent of the Openbaar Ministerie.")


@pytest.fixture(scope="module")
def member_keys(tmp_path_factory) -> Path:
    keys = tmp_path_factory.mktemp("tail-keys")
    generate_keypair("NL-CUSTOMS", keys)
    return keys


def container_number(serial: int) -> str:
    number = f"TLQU{serial % 1_000_000:06d}"
    return number + iso6346.calc_check_digit(number)


def alert_json(unique: str, serial: int, **header: object) -> dict:
    data = json.loads((EXAMPLES / "suspicious-container.json").read_text())
    data["header"].update({"summary": f"Tail test {unique} alert {serial}: reefer over declared weight.", **header})
    data["container_number"] = container_number(int(unique, 16) + serial)
    return data


def publish(alerts: list[dict], tmp_path: Path, member_keys: Path, kafka: KafkaSettings) -> list[dict]:
    path = tmp_path / f"alerts-{len(list(tmp_path.iterdir()))}.jsonl"
    path.write_text("".join(json.dumps(a) + "\n" for a in alerts))
    result = run_bus("publish", "--file", str(path), "--member", "NL-CUSTOMS", "--no-encrypt", "--json",
                     "--key", str(member_keys / "NL-CUSTOMS.key"), settings=kafka, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def tail(*args: str, kafka: KafkaSettings, columns: int = 200, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_bus("tail", *args, settings=kafka, env={"COLUMNS": str(columns)}, check=check)


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def time_of(line: dict) -> datetime:
    """What the rows are ordered by: the signed creation time, else when the record was written."""
    if line.get("alert"):
        return datetime.fromisoformat(line["alert"]["header"]["created"])
    if line.get("clear_header"):
        return datetime.fromisoformat(line["clear_header"]["created"])
    return datetime.fromisoformat(line["written"])


# -- the table -------------------------------------------------------------------------------------


def test_the_table_fits_100_columns_and_uses_the_room_at_200(kafka, member_keys, tmp_path, unique):
    red = alert_json(unique, 1, tlp="RED", handling_codes=["H1", "H3"], h3_conditions=H3,
                     summary=f"Tail test {unique}: TLP:RED reefer, seal differs from booking, "
                             "possible rip-off in Rotterdam before discharge.")
    publish([red], tmp_path, member_keys, kafka)
    keys = ["--keys", str(member_keys)]

    narrow = tail("alerts.suspicious-container", *keys, kafka=kafka, columns=100)
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100, [line for line in lines if len(line) > 100]
    [at] = [i for i, line in enumerate(lines) if red["container_number"] in line]
    assert lines[at].startswith("✔ verified") and " RED " in lines[at] and " H1 H3 " in lines[at]
    assert f"Tail test {unique}: TLP:RED reefer" in lines[at + 1], "the summary goes under the row"
    assert H3 in " ".join(" ".join(lines[at + 2:at + 6]).split()), "H3 conditions in full"

    wide = tail("alerts.suspicious-container", *keys, kafka=kafka, columns=200)
    lines = wide.stdout.splitlines()
    assert max(len(line) for line in lines) <= 200
    [row] = [line for line in lines if red["container_number"] in line]
    assert 100 < len(row) <= 200
    assert "TLP:RED" in row and "H1 H3" in row and f"Tail test {unique}: TLP:RED reefer, seal differs" in row


def test_rows_are_in_creation_time_order_across_partitions(kafka, member_keys, tmp_path, unique):
    now = datetime.now(UTC).replace(microsecond=0)
    ages = [40, 10, 30, 20, 50, 0]  # minutes: published in this order, created out of it
    alerts = [alert_json(unique, i, created=(now - timedelta(minutes=m)).isoformat()) for i, m in enumerate(ages)]
    receipts = publish(alerts, tmp_path, member_keys, kafka)
    assert len({r["partition"] for r in receipts}) > 1, "the test needs records on several partitions"

    lines = json_lines(tail("alerts.suspicious-container", "--json", "--keys", str(member_keys), kafka=kafka))
    times = [time_of(line) for line in lines]
    assert times == sorted(times), "every record of the topic, in time order"
    mine = [line["alert"]["header"]["summary"] for line in lines
            if line.get("alert") and f"Tail test {unique} alert" in line["alert"]["header"]["summary"]]
    expected = [alerts[i]["header"]["summary"] for i in sorted(range(len(ages)), key=lambda i: -ages[i])]
    assert mine == expected


# -- --since ---------------------------------------------------------------------------------------


def test_since_takes_durations_and_iso_times(kafka, member_keys, tmp_path, unique):
    publish([alert_json(unique, 0)], tmp_path, member_keys, kafka)
    keys = ["--keys", str(member_keys)]

    def summaries(since: str) -> list[str]:
        lines = json_lines(tail("alerts.suspicious-container", "--json", "--since", since, *keys, kafka=kafka))
        return [line["alert"]["header"]["summary"] for line in lines if line.get("alert")]

    mine = f"Tail test {unique} alert 0: reefer over declared weight."
    today = datetime.now(UTC).date()
    for since in ("1h", "2d", f"{today}", f"{today}T00:00:00", f"{today}T00:00:00Z", f"{today}T02:00:00+02:00"):
        assert mine in summaries(since), since
    assert summaries("2999-01-01T00:00:00Z") == []

    wrong = tail("alerts.suspicious-container", "--since", "yesterday", *keys, kafka=kafka, check=False)
    assert wrong.returncode == InvalidInput.exit_code and wrong.stdout == ""
    [message] = wrong.stderr.splitlines()
    assert "--since 'yesterday'" in message and "1h" in message and "2d" in message
    assert "2026-01-05T10:00:00Z" in message and "UTC" in message


# -- --group ---------------------------------------------------------------------------------------


def signed(topic: str, signer: SigningKey, summary: str) -> SealedRecord:
    record = seal(example("suspicious-container", summary=summary), signer, SCHEMAS)
    return SealedRecord(topic, record.key, record.value, record.headers)


def seen(result: subprocess.CompletedProcess[str]) -> list[str]:
    return sorted(line["alert"]["header"]["summary"] for line in json_lines(result) if line.get("alert"))


def test_a_group_resumes_where_the_officer_left_off(kafka, tmp_path, unique):
    topic = create_topic(kafka, f"test.scratch.tail-{unique}", partitions=3)
    _, _, signer = generate_keypair("NL-CUSTOMS", tmp_path)
    group = ["--group", f"desk-{unique}", "--json", "--keys", str(tmp_path)]
    publish_raw(kafka, [signed(topic, signer, "first"), signed(topic, signer, "second")])

    assert seen(tail(topic, *group, kafka=kafka)) == ["first", "second"]
    assert seen(tail(topic, *group, kafka=kafka)) == [], "nothing new"
    publish_raw(kafka, [signed(topic, signer, "third")])
    assert seen(tail(topic, *group, kafka=kafka)) == ["third"], "resumes after what was printed"
    assert seen(tail(topic, *group, "--from-beginning", kafka=kafka)) == ["first", "second", "third"]
    assert seen(tail(topic, *group, kafka=kafka)) == [], "--from-beginning's new place was kept"
    assert seen(tail(topic, *group, "--since", "1h", kafka=kafka)) == ["first", "second", "third"]

    # Following: the place is saved once a record is printed, so a Ctrl-C loses nothing and repeats nothing.
    follower = subprocess.Popen([*BUS, "tail", topic, *group, "--follow"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=REPO,
                                env={**os.environ, "BUS_BOOTSTRAP": kafka.bootstrap,
                                     "BUS_KAFKA_ENGINE": kafka.engine, "NO_COLOR": "1"})
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(iter(follower.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        publish_raw(kafka, [signed(topic, signer, "fourth")])
        wait_for(lambda: any('"fourth"' in line for line in printed), 60, "the follower to print the new alert")
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=30)
    reader.join(10)
    assert follower.returncode == 0, follower.stderr.read()
    assert seen(tail(topic, *group, kafka=kafka)) == []


POLICY = """\
version: "tail-group-1"
partners:
  - {id: EUROPOL, kind: eu-agency}
  - {id: BE-CUSTOMS, kind: customs}
rules:
  - id: containers
    match: {alert_types: [suspicious-container]}
    deliver_to: [EUROPOL, BE-CUSTOMS]
"""


def test_on_a_secured_cluster_the_group_is_under_the_members_prefix(secure_kafka, tmp_path):
    admin, _ = secure_kafka
    fed = make_demo(tmp_path / "federation")
    (tmp_path / "policy.yaml").write_text(POLICY)
    assert admin.sasl_password is not None
    admin_env = {"BUS_BOOTSTRAP": admin.bootstrap, "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                 "BUS_SASL_USERNAME": str(admin.sasl_username),
                 "BUS_SASL_PASSWORD": admin.sasl_password.get_secret_value()}
    run_bus("provision", "--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub),
            "--policy", str(tmp_path / "policy.yaml"), "--secrets", str(tmp_path / "secrets.yaml"),
            "--generate-missing", "--rotate-passwords", env=admin_env, check=True)
    password = yaml.safe_load((tmp_path / "secrets.yaml").read_text())["users"]["be-customs"]
    feed = feed_topic("BE-CUSTOMS")
    summary = f"For Belgian customs, read once ({datetime.now(UTC).isoformat()})"
    publish_raw(admin, [signed(feed, fed.signers["NL-CUSTOMS"], summary)])  # as the router forwards it

    member_env = {"BUS_BOOTSTRAP": admin.bootstrap, "BUS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                  "BUS_SASL_USERNAME": "be-customs", "BUS_SASL_PASSWORD": password}
    trust = ["--federation", str(fed.directory_path), "--authority-pub", str(fed.authority_pub)]
    first = run_bus("tail", feed, "--group", "desk", "--json", *trust, env=member_env, check=True)
    assert summary in seen(first)
    again = run_bus("tail", feed, "--group", "desk", "--json", *trust, env=member_env, check=True)
    assert summary not in seen(again)

    consumer = open_engine(admin).consumer(group_id="be-customs.desk")
    try:
        partitions = [TopicPartition(feed, p) for p in consumer.partitions_for(feed)]
        assert any(offset for offset in consumer.committed(partitions).values()), "kept in be-customs.desk"
    finally:
        consumer.close()


# -- dead letters ----------------------------------------------------------------------------------


def dead_letter(record: SealedRecord, reason: str, detail: str, offset: int) -> SealedRecord:
    """A dead-letter copy as the router writes it (docs/wire-format.md, "Dead letters"): the record
    as it came, a sender's own reject headers included, then the router's five headers."""
    forged = [("bus_reject_reason", b"none"), ("bus_reject_detail", b"nothing wrong here")]
    ours = [("bus_reject_reason", reason.encode()), ("bus_reject_detail", detail.encode()),
            ("bus_source_topic", record.topic.encode()), ("bus_source_partition", b"2"),
            ("bus_source_offset", str(offset).encode())]
    return SealedRecord(DLQ_TOPIC, record.key, record.value, [*record.headers, *forged, *ours])


def bounded_dead_letter(reason: str, detail: str, offset: int) -> SealedRecord:
    summary = {"form": "bounded", "reason": reason, "why": detail,
               "source": {"topic": "alerts.suspicious-container", "partition": 2, "offset": offset}}
    headers = [("bus_reject_reason", reason.encode()), ("bus_reject_detail", detail.encode()),
               ("bus_source_topic", b"alerts.suspicious-container"), ("bus_source_partition", b"2"),
               ("bus_source_offset", str(offset).encode()), ("bus_dead_letter_form", b"bounded")]
    return SealedRecord(DLQ_TOPIC, None, json.dumps(summary, sort_keys=True).encode(), headers)


def test_dead_letters_show_the_routers_reason_and_detail_never_verified(kafka, tmp_path, unique):
    create_topic(kafka, DLQ_TOPIC, partitions=6)
    _, _, signer = generate_keypair("NL-CUSTOMS", tmp_path)  # every copy's signature verifies today
    base = 1_000_000 + int(unique[:5], 16)
    verdicts = {
        "replay": "message id already routed within the replay window",
        "stale": "created 2026-01-01T00:00:00.000Z is older than the freshness window of 7 days",
        "future": "created 2099-01-01T00:00:00.000Z is more than 300 s ahead of the router's clock",
        "expired": "expired at 2026-01-02T00:00:00.000Z, before it was routed",
        "unknown-key": "key 0123456789abcdef0123456789abcdef is not in the directory",
    }
    stranger = SigningKey.generate("NL-CUSTOMS")  # a key nobody trusts: the unknown-key reject
    letters = [dead_letter(seal(example("suspicious-container", summary=f"dead letter {unique} {reason}"),
                                stranger if reason == "unknown-key" else signer, SCHEMAS),
                           reason, f"{detail} [{unique}]", base + i)
               for i, (reason, detail) in enumerate(verdicts.items())]
    letters.append(bounded_dead_letter("oversized", f"record of 1048400 bytes, over the limit [{unique}]",
                                       base + 99))
    letters.append(bounded_dead_letter("undecodable", f"header name is not UTF-8 [{unique}]", base + 98))
    publish_raw(kafka, letters)
    trust = ["--keys", str(tmp_path)]  # given, as the demo does: still the router's verdict, not today's

    lines = [line for line in json_lines(tail(DLQ_TOPIC, "--json", *trust, kafka=kafka))
             if unique in (line.get("error") or "")]
    assert len(lines) == len(letters)
    by_reason = {line["reason"]: line for line in lines}
    assert set(by_reason) == {*verdicts, "oversized", "undecodable"}
    for reason, detail in verdicts.items():
        line = by_reason[reason]
        assert line["verified"] is False and line["error"] == f"{detail} [{unique}]"
        assert line["dead_letter"]["form"] == "copy"
        assert line["dead_letter"]["claimed"]["producer"] == "NL-CUSTOMS"
        assert line["dead_letter"]["source"]["topic"] == "alerts.suspicious-container"
        assert "alert" not in line, "a dead letter's content is not presented as verified"
        assert line["verified_now"] is (reason != "unknown-key"), "its bytes verify today, the verdict stands"
    assert by_reason["oversized"]["verified_now"] is False
    assert by_reason["oversized"]["dead_letter"]["form"] == "bounded"
    assert by_reason["oversized"]["dead_letter"]["summary"]["source"]["offset"] == base + 99

    table = tail(DLQ_TOPIC, *trust, kafka=kafka, columns=200).stdout.splitlines()
    # Only this test's letters: other tests of the session dead-letter records on the same topic.
    ours = "\n".join(line for n, line in enumerate(table) if unique in line or unique in "".join(table[n + 1:n + 2]))
    assert ours.count(unique) == len(letters)
    assert "✔" not in ours and "verified" not in ours
    for i, (reason, detail) in enumerate(verdicts.items()):
        [at] = [n for n, line in enumerate(table) if line.strip() == f"{detail} [{unique}]"]
        row = table[at - 1]  # the router's detail is printed in full under its row
        assert row.startswith(f"✘ {reason} ") and row.endswith(f"alerts.suspicious-container[2]@{base + i}")
    bounded = f"[bounded] record of 1048400 bytes, over the limit [{unique}]"
    [at] = [n for n, line in enumerate(table) if bounded in line]
    assert table[at - 1].startswith("✘ oversized ")
    assert not any("nothing wrong here" in line for line in table), "the sender's forged verdict never shows"
    unjudged = [line for line in json_lines(tail(DLQ_TOPIC, "--json", kafka=kafka)) if unique in (line["error"] or "")]
    assert len(unjudged) == len(letters) and all(line["verified_now"] is None for line in unjudged)
    no_trust = tail(DLQ_TOPIC, kafka=kafka, columns=100).stdout.splitlines()
    assert sum(unique in line for line in no_trust) == len(letters)
    assert max(len(line) for line in no_trust) <= 100

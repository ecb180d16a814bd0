"""Cost of encrypting an alert to its recipients, against sealing it in clear.

In memory, no Kafka: seal (encode + sign) of a plain alert, then seal + encrypt
(HPKE wrap of the data key per recipient, ChaCha20-Poly1305 of the padded alert,
encode, sign) for 1, 5 and 10 recipients, and what a router (verify only) and a
recipient (verify + decrypt) pay on the way back. Absolute numbers depend on the
shared machine; compare the rows of one run.

    .venv/bin/python -m bench.crypto_bench [--count 500]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.confidential import Decryptor, VerifiedEnvelope, decrypt, seal_encrypted, unseal_any
from bus.core.keys import DecryptionKey, SigningKey
from bus.core.models import BaseAlert, parse_alert
from bus.core.sealing import SealedRecord, seal, unseal
from bus.core.trust import FederationDirectory, Member, MemberKey

REPO = Path(__file__).resolve().parents[1]
RECIPIENT_COUNTS = (1, 5, 10)


@dataclass(frozen=True)
class Row:
    label: str
    recipients: int
    per_second: float
    value_bytes: float


def federation(size: int) -> tuple[FederationDirectory, SigningKey, dict[str, DecryptionKey]]:
    """A producer and `size` recipients, each with signing and encryption keys."""
    now = datetime.now(UTC)
    window = (now - timedelta(days=1), now + timedelta(days=1))
    producer = SigningKey.generate("NL-CUSTOMS")
    decryption = {f"MEMBER-{i}": DecryptionKey.generate(f"MEMBER-{i}") for i in range(size)}
    members = [Member(id="NL-CUSTOMS", name="producer", country="NL", kind="customs",  # type: ignore[arg-type]
                      may_publish=("suspicious-container",),  # type: ignore[arg-type]
                      keys=(MemberKey.for_public_key(producer.public, *window),))]
    members += [Member(id=m, name=m, country="NL", kind="police",  # type: ignore[arg-type]
                       keys=(MemberKey.for_public_key(k.public, *window),)) for m, k in decryption.items()]
    directory = FederationDirectory(federation_id="BENCH", name="bench", version=1, issued_at=now,
                                    members=tuple(members))
    return directory, producer, decryption


def alerts(n: int, release_to: list[str]) -> list[BaseAlert]:
    base = json.loads((REPO / "examples/alerts/suspicious-container.json").read_text())
    base["header"] = {k: v for k, v in base["header"].items() if k not in ("message_id", "created", "producer")}
    base["header"]["release_to"] = release_to
    return [parse_alert(base, producer="NL-CUSTOMS", empact_codes=default_empact_codes()) for _ in range(n)]


T = TypeVar("T")


def timed(work: Callable[[], list[T]]) -> tuple[float, list[T]]:
    """(items per second, items) of one run of `work`."""
    start = time.perf_counter()
    done = work()
    elapsed = time.perf_counter() - start
    return (len(done) / elapsed if elapsed > 0 else float("inf")), done


def mean_size(records: list[SealedRecord]) -> float:
    return sum(len(r.value) for r in records) / len(records)


def run(count: int) -> list[Row]:
    schemas, codes = default_schemas(), default_empact_codes()
    directory, producer, decryption = federation(max(RECIPIENT_COUNTS))
    rows: list[Row] = []

    batch = alerts(count, [])
    speed, plain = timed(lambda: [seal(a, producer, schemas) for a in batch])
    rows.append(Row("seal, in clear", 0, speed, mean_size(plain)))
    speed, _ = timed(lambda: [unseal(r.key, r.value, r.headers, directory, schemas, codes) for r in plain])
    rows.append(Row("unseal, in clear (verify+decode)", 0, speed, mean_size(plain)))

    for k in RECIPIENT_COUNTS:
        rows += encrypted_rows(count, k, directory, producer, decryption, schemas, codes)
    return rows


def encrypted_rows(count: int, k: int, directory: FederationDirectory, producer: SigningKey,
                   decryption: dict[str, DecryptionKey], schemas: SchemaSet, codes: EmpactCodeList) -> list[Row]:
    """Seal + encrypt to `k` recipients, verify as the router does, decrypt as the last recipient."""
    named = [f"MEMBER-{i}" for i in range(k)]
    batch = alerts(count, named)
    speed, sealed = timed(lambda: [seal_encrypted(a, producer, directory, schemas) for a in batch])
    size = mean_size(sealed)
    rows = [Row("seal + encrypt", k, speed, size)]
    speed, verified = timed(lambda: [unseal_any(r.key, r.value, r.headers, directory, schemas, codes) for r in sealed])
    rows.append(Row("verify only (router)", k, speed, size))
    reader = Decryptor.of([decryption[named[-1]]])
    envelopes = [e for e in verified if isinstance(e, VerifiedEnvelope)]
    speed, _ = timed(lambda: [decrypt(e, reader, schemas, codes) for e in envelopes])
    rows.append(Row("decrypt, after verify (recipient)", k, speed, size))
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"{'operation':<34} {'recipients':>10} {'per second':>11} {'value bytes':>12}"]
    for r in rows:
        lines.append(f"{r.label:<34} {r.recipients or '-':>10} {r.per_second:>11,.0f} {r.value_bytes:>12,.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500, help="alerts per row")
    args = parser.parse_args()
    print(table(run(args.count)))


if __name__ == "__main__":
    main()

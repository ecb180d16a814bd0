"""A member kit: every file a member's connectors and officers need, in one private folder.

`bus provision --kit MEMBER --out DIR` hands a member over without anybody copying a
password out of `secrets.yaml` by hand. Every file is written 0600 from creation
(`write_private`), the folder 0700 when it is created:

| file | what |
|---|---|
| `bus.yaml` | the `kafka:` connection (bootstrap, protocol, SCRAM user and password, CA): `--config` |
| `bus.env` | the same as `BUS_*` variables, plus `BUS_MEMBER`, `BUS_FEDERATION`, `BUS_AUTHORITY_PUB` and the |
| | connectors' `BUS_CONNECTOR_MEMBER`, `..._PUBLISH__FEDERATION`, `..._PUBLISH__AUTHORITY_PUB` |
| `federation.yaml` | the signed federation directory, as the authority signed it |
| `authority.pub` | the federation authority's public key, which verifies it |
| `ca.pem` | the CA of the brokers' TLS certificates (TLS listeners only) |
| `README.txt` | what the files are and how to use them (no secret in it) |

`bus.yaml` names `ca.pem` relative to itself, so the folder may move; `bus.env` holds
absolute paths (an environment has no "beside"): those of `installed_at`, the folder's
place on the member's host, which defaults to where it is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import SecretStr

from bus.adapters.federation_file import load_verified_directory
from bus.adapters.private_file import git_exposure, write_private
from bus.core.topology import feed_topic, receipts_topic
from bus.core.trust import FederationDirectory, rfc3339, utcnow
from bus.errors import BusError, InvalidInput

CONFIG = "bus.yaml"
ENV = "bus.env"
DIRECTORY = "federation.yaml"
AUTHORITY = "authority.pub"
CA = "ca.pem"
README = "README.txt"
KIT_FILES = (CONFIG, ENV, DIRECTORY, AUTHORITY, CA, README)

SCRAM_MECHANISM = "SCRAM-SHA-512"
"""What `bus provision` creates credentials for."""
TLS_PROTOCOLS = frozenset({"SASL_SSL", "SSL"})
_BARE = re.compile(r"[A-Za-z0-9_./:,@+=-]*")
"""Env values written without quotes: read the same by sh, systemd and `docker --env-file`."""


@dataclass(frozen=True)
class KitConnection:
    """How the member reaches the cluster: where, how, as whom, and which CA to trust."""

    bootstrap: str
    security_protocol: str
    user: str
    password: SecretStr
    ca_file: Path | None = None
    """The CA to copy into the kit (TLS listeners); None: the system's CAs."""


@dataclass(frozen=True)
class MemberKit:
    member: str
    """The member id, or for a service's kit its SCRAM user (`svc-router`, `svc-auditor`)."""
    connection: KitConnection
    directory: FederationDirectory
    """The verified directory; `directory_file` must hold this version."""
    directory_file: Path
    authority_pub: Path
    service: bool = False
    """A service's kit (the router, the auditor): no member settings, no feed."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _env_line(name: str, value: str) -> str:
    if _BARE.fullmatch(value):
        return f"{name}={value}"
    if "'" in value or "\\" in value or "\n" in value:
        raise InvalidInput(f"{name} holds a quote, backslash or line break that an env file cannot carry "
                       "portably; use bus.yaml (--config) instead, or choose another value")
    return f"{name}='{value}'"


def config_text(kit: MemberKit, *, with_ca: bool) -> str:
    c = kit.connection
    kafka: dict[str, str] = {"bootstrap": c.bootstrap, "security_protocol": c.security_protocol,
                             "sasl_mechanism": SCRAM_MECHANISM, "sasl_username": c.user,
                             "sasl_password": c.password.get_secret_value()}
    if with_ca:
        kafka["ssl_cafile"] = CA
    header = (f"# {kit.member}'s connection to the EPA bus (kit). It holds the SCRAM password of\n"
              f"# {c.user}: keep it 0600. Use it with `bus ... --config {CONFIG}` or BUS_CONFIG={CONFIG};\n"
              f"# ssl_cafile is relative to this file.\n")
    return header + yaml.safe_dump({"kafka": kafka}, sort_keys=False)


def env_text(kit: MemberKit, base: Path, *, with_ca: bool) -> str:
    c = kit.connection
    values = [] if kit.service else [("BUS_MEMBER", kit.member)]
    values += [("BUS_BOOTSTRAP", c.bootstrap), ("BUS_SECURITY_PROTOCOL", c.security_protocol),
               ("BUS_SASL_MECHANISM", SCRAM_MECHANISM), ("BUS_SASL_USERNAME", c.user),
               ("BUS_SASL_PASSWORD", c.password.get_secret_value())]
    if with_ca:
        values.append(("BUS_SSL_CAFILE", str(base / CA)))
    values += [("BUS_FEDERATION", str(base / DIRECTORY)), ("BUS_AUTHORITY_PUB", str(base / AUTHORITY))]
    if not kit.service:  # the connectors' own names for the same (docs/operators.md, "Configuration")
        values += [("BUS_CONNECTOR_MEMBER", kit.member),
                   ("BUS_CONNECTOR_PUBLISH__FEDERATION", str(base / DIRECTORY)),
                   ("BUS_CONNECTOR_PUBLISH__AUTHORITY_PUB", str(base / AUTHORITY))]
    header = (f"# {kit.member}'s settings for every bus command and connector (kit), with the SCRAM\n"
              f"# password of {c.user}: keep it 0600. Paths assume the kit lives in {base}.\n"
              f"# systemd: EnvironmentFile={base / ENV}   shell: set -a; . {base / ENV}; set +a\n")
    return header + "\n".join(_env_line(name, value) for name, value in values) + "\n"


def readme_text(kit: MemberKit, base: Path, *, with_ca: bool) -> str:
    c, d = kit.connection, kit.directory
    tls = (f"{CA:<16} the CA of the brokers' TLS certificates\n" if with_ca else
           "" if c.security_protocol not in TLS_PROTOCOLS else
           "(no ca.pem: the brokers' certificates are checked against the system's CAs)\n")
    usage = _service_usage(kit, base) if kit.service else _member_usage(kit, base)
    return (
        f"{'Service' if kit.service else 'Member'} kit for {kit.member}, written {rfc3339(utcnow())}\n"
        f"Kafka: {c.bootstrap} ({c.security_protocol}) as SCRAM user {c.user}\n"
        f"Federation: {d.federation_id} ({d.name}), directory version {d.version}\n\n"
        f"Keep these files private (0600): {CONFIG} and {ENV} hold {c.user}'s password.\n\n"
        f"{CONFIG:<16} the kafka: connection, for --config / BUS_CONFIG\n"
        f"{ENV:<16} the same as BUS_* variables, with BUS_FEDERATION, BUS_AUTHORITY_PUB"
        f"{'' if kit.service else ' and BUS_MEMBER'}\n"
        f"{DIRECTORY:<16} the signed federation directory (version {d.version}: replace it when the authority "
        f"signs a newer one)\n"
        f"{AUTHORITY:<16} the federation authority's public key (it verifies {DIRECTORY})\n"
        f"{tls}\n"
        f"Your private keys are not in this kit: they never leave your host (bus keygen).\n\n"
        + usage
    )


def _service_usage(kit: MemberKit, base: Path) -> str:
    return (f"Every bus command run with {ENV} connects as {kit.connection.user}:\n"
            f"  set -a; . {base / ENV}; set +a\n"
            f"  bus router run --policy POLICY ...      (svc-router)\n"
            f"  bus audit verify                          (svc-auditor)\n"
            f"systemd: EnvironmentFile={base / ENV}\n")


def _member_usage(kit: MemberKit, base: Path) -> str:
    return (
        f"A liaison officer's feed:\n"
        f"  set -a; . {base / ENV}; set +a\n"
        f"  bus tail {feed_topic(kit.member)} --from-beginning\n"
        f"  bus tail {receipts_topic(kit.member)} --from-beginning\n"
        f"Publishing:\n"
        f"  bus publish --config {base / CONFIG} --member {kit.member} --key {kit.member}.key \\\n"
        f"              --federation {base / DIRECTORY} --authority-pub {base / AUTHORITY} --file alert.json\n"
        f"A connector (systemd):\n"
        f"  EnvironmentFile={base / ENV}\n"
        f"  ExecStart=bus connector run http-ingest --config /etc/bus/http-ingest.yaml\n"
    )


def write_kit(kit: MemberKit, out: Path, *, installed_at: Path | None = None, overwrite: bool = False) -> list[Path]:
    """Write the kit into `out` (created 0700 if missing); return the files written.

    Refuses a folder that already holds a kit unless `overwrite`, and a folder inside a git
    work tree that git does not ignore. The copy of the directory is verified with the
    copy of the authority key before returning: what the member gets checks out.
    """
    out = Path(out)
    base = Path(installed_at) if installed_at is not None else out.resolve()
    if not base.is_absolute():
        raise InvalidInput(f"--installed-at {base}: give an absolute path (the env file's paths are absolute)")
    existing = [name for name in KIT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise InvalidInput(f"{out} already holds a member kit ({', '.join(existing)}); --force replaces it")
    if (risk := git_exposure(out / CONFIG)) is not None:
        raise InvalidInput(risk)
    directory_bytes = _read(kit.directory_file, "federation directory")
    authority_bytes = _read(kit.authority_pub, "authority public key")
    ca = kit.connection.ca_file
    ca_bytes = _read(ca, "CA file") if ca is not None else None
    with_ca = ca_bytes is not None
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
        out.chmod(0o700)  # whatever the umask
    elif not out.is_dir():
        raise InvalidInput(f"{out} exists and is not a folder")
    files = {CONFIG: config_text(kit, with_ca=with_ca).encode(), ENV: env_text(kit, base, with_ca=with_ca).encode(),
             DIRECTORY: directory_bytes, AUTHORITY: authority_bytes,
             README: readme_text(kit, base, with_ca=with_ca).encode()}
    if ca_bytes is not None:
        files[CA] = ca_bytes
    written = []
    for name, data in files.items():
        write_private(out / name, data)
        written.append(out / name)
    for stale in set(existing) - set(files):  # a ca.pem of an earlier TLS kit, say
        (out / stale).unlink()
    _check_copy(kit, out)
    return written


def _check_copy(kit: MemberKit, out: Path) -> None:
    try:
        copy = load_verified_directory(out / DIRECTORY, out / AUTHORITY)
    except BusError as exc:
        raise InvalidInput(f"the kit's {DIRECTORY} does not verify with its {AUTHORITY}: {exc}") from None
    if copy.digest() != kit.directory.digest():
        raise InvalidInput(f"{kit.directory_file} changed while the kit was written (now version {copy.version}); "
                       "write the kit again")


__all__ = ["CA", "CONFIG", "DIRECTORY", "ENV", "KIT_FILES", "README", "KitConnection", "MemberKit", "config_text",
           "env_text", "readme_text", "write_kit"]

"""`bus federation` commands: create, change, sign and check the federation directory.

Every change re-signs the file and bumps its version, so readers can refuse an
older copy. A change is only applied to a file whose current signature checks
out with the authority key: nobody blesses an edit they have not reviewed
(`sign` is the explicit way to accept a hand edit).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich import box
from rich.markup import escape
from rich.table import Table

from bus.adapters.federation_file import (
    generate_authority_key,
    load_authority_signing_key,
    load_verified_directory,
    make_demo,
    read_directory_file,
    write_directory_file,
)
from bus.cli._common import err, fail, handle_errors, out
from bus.core.keys import EncryptionPublicKey, PublicKey, public_key_from_pem
from bus.core.trust import (
    ALERT_TYPES,
    DirectoryError,
    FederationDirectory,
    FederationRouter,
    KeyStatus,
    KeyUse,
    Member,
    MemberKey,
    MemberKind,
    add_key,
    add_member,
    add_router,
    bump,
    revoke_key,
    rfc3339,
    sign_directory,
    utcnow,
    verify_directory,
)
from bus.errors import BusError, InvalidInput

app = typer.Typer(no_args_is_help=True)

PublishType = StrEnum("PublishType", {t.upper().replace("-", "_"): t for t in ALERT_TYPES})  # type: ignore[misc]

DEFAULT_FILE = Path("federation/federation.yaml")
INIT_HEADER = (
    "Signed federation directory. Change it only with `bus federation add-member|add-key|\n"
    "revoke-key` (each re-signs and bumps the version). Comments are not signed."
)

FileOpt = Annotated[Path, typer.Option("--file", "-f", help="The federation directory (YAML).")]
AuthorityKeyOpt = Annotated[
    Path,
    typer.Option("--authority-key", envvar="BUS_AUTHORITY_KEY",
                 help="The federation authority's private key (PEM, mode 0600)."),
]
M = TypeVar("M", bound=BaseModel)


def parse_time(text: str, option: str) -> datetime:
    """ISO 8601 with 'Z' or an offset, a bare date (midnight UTC), or 'now'."""
    text = text.strip()
    if text.lower() == "now":
        return utcnow()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BusError(
            f"{option} {text!r}: expected e.g. 2026-01-31, 2026-01-31T12:00:00Z or 'now'"
        ) from None
    if value.tzinfo is None:
        raise BusError(f"{option} {text!r}: add 'Z' or an offset such as +01:00 (times are exact)")
    return value.astimezone(UTC)


NotBeforeOpt = Annotated[str | None, typer.Option("--not-before", help="Valid from (default: now).")]
NotAfterOpt = Annotated[str | None, typer.Option("--not-after", help="Valid until, exclusive (default: +1 year).")]


def _read_public_key(path: Path) -> PublicKey | EncryptionPublicKey:
    try:
        return public_key_from_pem(path.read_bytes(), source=str(path))
    except OSError as exc:
        raise BusError(f"cannot read public key {path}: {exc.strerror or exc}") from None


def _validity(not_before: str | None, not_after: str | None) -> tuple[datetime, datetime]:
    """A key's window from --not-before/--not-after: from now, for a year, unless given."""
    start = parse_time(not_before, "--not-before") if not_before else utcnow()
    return start, parse_time(not_after, "--not-after") if not_after else start + timedelta(days=365)


def _build(model: type[M], **fields: Any) -> M:
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or model.__name__}: {e['msg']}"
            for e in exc.errors()
        )
        raise BusError(problems) from None


def _edit(
    file: Path, authority_key: Path, change: Callable[[FederationDirectory], FederationDirectory]
) -> tuple[FederationDirectory, str]:
    """Verify the current file, apply one change (version + 1), sign and write it back."""
    signer = load_authority_signing_key(authority_key)
    signed = read_directory_file(file)
    try:
        verify_directory(signed, signer.public)
    except DirectoryError as exc:
        raise DirectoryError(
            f"{file}: {exc}. Refusing to change it; review the file and run "
            "`bus federation sign` to accept its current content first",
            exc.problem,
        ) from None
    updated = change(signed.directory)
    write_directory_file(file, sign_directory(updated, signer))
    return updated, signer.key_id


def _signed_note(file: Path, directory: FederationDirectory, authority_id: str) -> None:
    out.print(
        f"{file}: {directory.federation_id} version {directory.version} signed by authority key "
        f"{authority_id}", highlight=False,
    )


@app.command("init")
@handle_errors
def init(
    authority_key: Annotated[
        Path,
        typer.Option("--authority-key", help="Folder for authority.key (0600) and authority.pub."),
    ],
    file: FileOpt = DEFAULT_FILE,
    name: Annotated[
        str, typer.Option("--name", help="Federation name.")
    ] = "European Ports Alliance",
    federation_id: Annotated[str, typer.Option("--id", help="Federation id.")] = "EPA",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Generate the authority key pair and an empty signed directory (version 1)."""
    if file.exists() and not force:
        raise BusError(f"{file} already exists; refusing to replace a federation directory")
    directory = _build(FederationDirectory, federation_id=federation_id, name=name,
                       version=1, issued_at=utcnow())
    key_path, pub_path, signer = generate_authority_key(authority_key, overwrite=force)
    write_directory_file(file, sign_directory(directory, signer), header=INIT_HEADER)
    out.print(f"authority key id  {signer.key_id}", highlight=False)
    out.print(f"private           {key_path} (0600, keep it offline)", highlight=False)
    out.print(f"public            {pub_path} (give to every router and reader)", highlight=False)
    _signed_note(file, directory, signer.key_id)


@app.command("add-member")
@handle_errors
def add_member_cmd(
    member_id: Annotated[str, typer.Option("--id", help="Member id, e.g. NL-CUSTOMS.")],
    name: Annotated[str, typer.Option("--name", help="Organisation name.")],
    country: Annotated[str, typer.Option("--country", help="ISO 3166 alpha-2, or EU.")],
    kind: Annotated[MemberKind, typer.Option("--kind", help="Kind of organisation.")],
    authority_key: AuthorityKeyOpt,
    may_publish: Annotated[
        list[PublishType] | None,
        typer.Option("--may-publish", help="Alert type it may publish (repeat the option)."),
    ] = None,
    file: FileOpt = DEFAULT_FILE,
) -> None:
    """Add a member (no keys yet: add them with add-key)."""
    member = _build(Member, id=member_id, name=name, country=country.upper(), kind=kind,
                    may_publish=tuple(str(t.value) for t in may_publish or ()))
    directory, authority_id = _edit(file, authority_key, lambda d: add_member(d, member))
    out.print(f"added {member.id} ({member.kind}, {member.country}) "
              f"may publish: {', '.join(member.may_publish) or 'nothing'}", highlight=False)
    _signed_note(file, directory, authority_id)


@app.command("add-router")
@handle_errors
def add_router_cmd(
    router_id: Annotated[str, typer.Option("--id", help="Router id, e.g. EPA-ROUTER-1.")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The router's Ed25519 public key (PEM), from `bus keygen`.")
    ],
    authority_key: AuthorityKeyOpt,
    name: Annotated[str, typer.Option("--name", help="What this router is, for people.")] = "EPA router",
    not_before: NotBeforeOpt = None,
    not_after: NotAfterOpt = None,
    file: FileOpt = DEFAULT_FILE,
) -> None:
    """List a router and its signing key: members verify its receipts and audit checkpoints with it.

    A router already listed gets the key added (rotation: both valid in the overlap);
    retire an old one with `revoke-key --member <ROUTER-ID>`.
    """
    pub = _read_public_key(public_key)
    if isinstance(pub, EncryptionPublicKey):
        raise BusError(f"{public_key} is an encryption key; a router signs (give its Ed25519 .pub)")
    start, end = _validity(not_before, not_after)
    if end <= utcnow():
        raise BusError(f"--not-after {rfc3339(end)} has already passed: the key would never verify anything")
    key = _build(MemberKey, key_id=pub.key_id, public_key=pub.to_raw_b64(), not_before=start, not_after=end)

    def change(d: FederationDirectory) -> FederationDirectory:
        if d.router(router_id) is not None:
            return add_key(d, router_id, key)
        return add_router(d, _build(FederationRouter, id=router_id, name=name, keys=(key,)))

    directory, authority_id = _edit(file, authority_key, change)
    out.print(f"router {router_id}: signing key {key.key_id} valid {rfc3339(key.not_before)} .. "
              f"{rfc3339(key.not_after)}", highlight=False)
    _signed_note(file, directory, authority_id)


@app.command("add-key")
@handle_errors
def add_key_cmd(
    member: Annotated[str, typer.Option("--member", help="Member id.")],
    public_key: Annotated[
        Path,
        typer.Option("--public-key", help="The member's public key (PEM): <MEMBER>.pub (Ed25519, signing) "
                     "or <MEMBER>.enc.pub (X25519, encryption); the kind is read from the key."),
    ],
    authority_key: AuthorityKeyOpt,
    not_before: NotBeforeOpt = None,
    not_after: NotAfterOpt = None,
    use: Annotated[
        KeyUse | None,
        typer.Option("--use", help="Refuse the key unless it is of this kind (signing or encryption)."),
    ] = None,
    allow_past: Annotated[
        bool, typer.Option("--allow-past", help="Accept a validity window that has already ended (a key "
                                                "listed only to verify what it signed back then).")
    ] = False,
    file: FileOpt = DEFAULT_FILE,
) -> None:
    """Add a signing or encryption key to a member: step one of a rotation (both valid in the overlap)."""
    pub = _read_public_key(public_key)
    start, end = _validity(not_before, not_after)
    key = _build(MemberKey, key_id=pub.key_id, public_key=pub.to_raw_b64(), not_before=start, not_after=end,
                 use=KeyUse.ENCRYPTION if isinstance(pub, EncryptionPublicKey) else KeyUse.SIGNING)
    if use is not None and key.use is not use:
        kind = "an encryption key" if key.use is KeyUse.ENCRYPTION else "a signing key"
        raise BusError(f"{public_key} is {kind}; --use asked for {use.value}")
    if key.not_after <= utcnow() and not allow_past:
        raise InvalidInput(
            f"--not-after {rfc3339(key.not_after)}{'' if not_after else ' (--not-before + 365 days)'} has "
            "already passed: the key would be expired from the "
            "start and verify no new alert; check the dates (or give --allow-past to list it for old "
            "alerts only)", [("--not-after", "already passed")])
    directory, authority_id = _edit(file, authority_key, lambda d: add_key(d, member, key))
    out.print(f"added {key.use.value} key {key.key_id} to {member}: valid {rfc3339(key.not_before)} .. "
              f"{rfc3339(key.not_after)}", highlight=False)
    _signed_note(file, directory, authority_id)


@app.command("revoke-key")
@handle_errors
def revoke_key_cmd(
    member: Annotated[str, typer.Option("--member", help="Member id.")],
    key_id: Annotated[str, typer.Option("--key-id", help="Key id (thumbprint) to revoke.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")],
    authority_key: AuthorityKeyOpt,
    at: Annotated[
        str, typer.Option("--at", help="Alerts created at or after this time are refused.")
    ] = "now",
    file: FileOpt = DEFAULT_FILE,
) -> None:
    """Revoke a key: alerts created from --at on fail (key-revoked); earlier ones still verify."""
    when = parse_time(at, "--at")
    directory, authority_id = _edit(
        file, authority_key, lambda d: revoke_key(d, member, key_id, at=when, reason=reason)
    )
    out.print(f"revoked key {key_id} of {member} at {rfc3339(when)}: {reason}", highlight=False)
    _signed_note(file, directory, authority_id)


@app.command("sign")
@handle_errors
def sign(authority_key: AuthorityKeyOpt, file: FileOpt = DEFAULT_FILE) -> None:
    """Accept the file's current content: bump the version and sign (no-op if already signed)."""
    signer = load_authority_signing_key(authority_key)
    signed = read_directory_file(file)
    try:
        verify_directory(signed, signer.public)
    except DirectoryError as exc:
        err.print(f"[dim]{escape(str(exc))}[/]", highlight=False)
    else:
        out.print(f"{file}: version {signed.directory.version} is already signed by this "
                  "authority key; unchanged", highlight=False)
        return
    directory = bump(signed.directory)
    write_directory_file(file, sign_directory(directory, signer))
    _signed_note(file, directory, signer.key_id)


def _short(value: datetime) -> str:
    """Whole days in the table; exact times are in the file."""
    return value.strftime("%Y-%m-%d")


STATUS_STYLE = {
    KeyStatus.VALID: "green",
    KeyStatus.NOT_YET_VALID: "yellow",
    KeyStatus.EXPIRED: "dim",
    KeyStatus.REVOKED: "red",
}


@app.command("verify")
def verify(
    authority_pub: Annotated[
        list[Path],
        typer.Option("--authority-pub", envvar="BUS_AUTHORITY_PUB",
                     help="Authority public key (PEM); repeat while the authority rotates."),
    ],
    file: FileOpt = DEFAULT_FILE,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Remember the highest accepted version here; refuse older."),
    ] = None,
    at: Annotated[str, typer.Option("--at", help="Show key status at this time.")] = "now",
) -> None:
    """Check the signature (and version), then list members and keys. Exit 1 if not valid."""
    try:
        directory = load_verified_directory(file, authority_pub, state)
        signed = read_directory_file(file)
        when = parse_time(at, "--at")
    except BusError as exc:
        fail(str(exc), 1)
        return
    signer = signed.signature.authority_key_id if signed.signature else "?"
    out.print(
        f"[green]✔[/] {escape(str(file))}: federation {directory.federation_id} "
        f"({escape(directory.name)}) version {directory.version}, issued "
        f"{rfc3339(directory.issued_at)}, signed by authority key {signer}",
        highlight=False,
    )
    members = Table(title="members", title_justify="left", box=box.SIMPLE_HEAD)
    members.add_column("member / name")
    members.add_column("kind", no_wrap=True)
    members.add_column("country", no_wrap=True)
    members.add_column("may publish", min_width=20)
    keys = Table(title=f"keys (status at {rfc3339(when)})", title_justify="left",
                 box=box.SIMPLE_HEAD)
    for column in ("member / use / key id", "valid from", "valid until", "status"):
        keys.add_column(column, no_wrap=True)
    notes: list[str] = []
    for member in directory.members:
        members.add_row(f"[bold]{member.id}[/]\n[dim]{escape(member.name)}[/]",
                        member.kind.value, member.country,
                        "\n".join(member.may_publish) or "-", end_section=True)
        keys.add_row(f"[bold]{member.id}[/]", "", "", "" if member.keys else "[yellow]no keys[/]")
        for use in KeyUse:
            of_use = [k for k in member.keys if k.use is use]
            if of_use:
                keys.add_row(f"  [dim]{use.value}[/]", "", "", "")
            for key in of_use:
                status = key.status_at(when)
                keys.add_row(f"    {key.key_id}", _short(key.not_before), _short(key.not_after),
                             f"[{STATUS_STYLE[status]}]{status.value}[/]")
                if key.revoked_at is not None:
                    notes.append(f"{member.id} {use.value} key {key.key_id} revoked at "
                                 f"{rfc3339(key.revoked_at)}: {key.revocation_reason or 'no reason given'}")
    for router in directory.routers:
        keys.add_row(f"[bold]{router.id}[/] [dim](router)[/]", "", "", "" if router.keys else "[yellow]no keys[/]")
        for key in router.keys:
            status = key.status_at(when)
            keys.add_row(f"    {key.key_id}", _short(key.not_before), _short(key.not_after),
                         f"[{STATUS_STYLE[status]}]{status.value}[/]")
    out.print(members)
    out.print(keys)
    for note in notes:
        out.print(escape(note), highlight=False)
    n_keys = sum(len(m.keys) for m in directory.members)
    routers = f", {len(directory.routers)} router(s)" if directory.routers else ""
    out.print(f"{len(directory.members)} member(s), {n_keys} key(s){routers}", highlight=False)


@app.command("demo")
@handle_errors
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder to create the demo federation in.")
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing demo.")] = False,
) -> None:
    """A throwaway federation: authority key, member keys and a signed directory in --out."""
    fed = make_demo(out_dir, overwrite=force)
    out.print(f"directory       {fed.directory_path} (version {fed.directory.version})",
              highlight=False)
    out.print(f"authority key   {fed.authority_key} (0600)", highlight=False)
    out.print(f"authority pub   {fed.authority_pub}", highlight=False)
    out.print(f"member keys     {fed.keys_dir}/<MEMBER>.key (signing) and <MEMBER>.enc.key (encryption), "
              "0600, each with its .pub", highlight=False)
    out.print(f"  {'member':<22} {'signing key id':<32}  encryption key id", highlight=False)
    for member_id, signer in fed.signers.items():
        enc = fed.decryption_keys[member_id].key_id
        out.print(f"  {member_id:<22} {signer.key_id}  {enc}", highlight=False)
    if fed.router_signer is not None:
        out.print(f"router key      {fed.router_key} (0600): router {fed.router_id}, key id "
                  f"{fed.router_signer.key_id}; run the router with --router-id {fed.router_id} "
                  f"--router-key {fed.router_key}", highlight=False)
    out.print(
        f"check it: bus federation verify --file {fed.directory_path} "
        f"--authority-pub {fed.authority_pub}",
        highlight=False,
    )

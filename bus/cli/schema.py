"""`bus schema check` and `bus schema fingerprints`: schema evolution and the fingerprint table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from bus.adapters.schema_files import load_schemas
from bus.cli._common import handle_errors, out
from bus.errors import BusError

if TYPE_CHECKING:
    from bus.core.codec import SchemaSet

app = typer.Typer(no_args_is_help=True)

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", envvar="BUS_SCHEMAS_DIR", help="Schema folder (default: the shipped schemas/avro)."),
]


def _folder(directory: Path | None) -> Path:
    """The folder to check: `--dir`, else the schemas every service uses (shipped or $BUS_SCHEMAS_DIR)."""
    from bus.adapters.schema_files import schemas_folder

    if directory is not None:
        return directory
    folder = schemas_folder()
    return folder if isinstance(folder, Path) else Path(str(folder))


@app.command()
@handle_errors
def check(
    new: Annotated[Path | None, typer.Argument(help="A proposed new version of an alert schema (.avsc).")] = None,
    all_types: Annotated[
        bool, typer.Option("--all", help="Check each current schema against every older revision in the folder.")
    ] = False,
    directory: DirOption = None,
) -> None:
    """Backward and forward compatibility under Avro's schema resolution rules.

    NEW.avsc is checked against the current schema of its alert type (found by its
    record name) and every older revision `<alert-type>.rN.avsc`. Exit 1 names each
    field that breaks a rule.
    """
    from bus.adapters.schema_history import full_name, load_candidate, load_history
    from bus.core.codec import crc64_fingerprint
    from bus.core.schema_compat import compare

    if (new is None) == (not all_types):
        raise BusError("give NEW.avsc (a proposed schema) or --all (the folder's own history), not both")
    folder = _folder(directory)
    histories = load_history(folder)
    pairs = []  # (label of the new schema, its parsed schema, alert type, older SchemaFile)
    if new is not None:
        candidate = load_candidate(new, folder)
        name = full_name(candidate)
        matches = [h for h in histories.values() if full_name(h.current.schema) == name]
        if not matches:
            known = ", ".join(sorted(str(full_name(h.current.schema)) for h in histories.values()))
            raise BusError(f"{new}: record {name} is no alert schema in {folder} (known: {known})")
        history = matches[0]
        if crc64_fingerprint(candidate) == crc64_fingerprint(history.current.schema):
            out.print(f"{escape(str(new))} has the same canonical form as {history.current.label}: "
                      "nothing to check", soft_wrap=True)
            return
        pairs += [(str(new), candidate, history.alert_type, old) for old in (history.current, *history.older)]
    else:
        load_schemas(folder)  # fingerprints unique, every current schema loads as the codec loads it
        for history in histories.values():
            pairs += [(history.current.label, history.current.schema, history.alert_type, old)
                      for old in history.older]
    failures = 0
    for label, schema, alert_type, old in pairs:
        problems = compare(schema, old.schema)
        if not problems:
            out.print(f"[green]ok[/]   {escape(label)} <-> {escape(old.label)}: backward and forward compatible",
                      soft_wrap=True)
            continue
        failures += 1
        out.print(f"[red]FAIL[/] {escape(label)} <-> {escape(old.label)} ({alert_type}):", soft_wrap=True)
        for problem in problems:
            out.print(f"       {escape(str(problem))}", soft_wrap=True)
    if not pairs:
        out.print(f"ok   {len(histories)} alert schema(s) in {escape(str(folder))}, no older revisions to check",
                  soft_wrap=True)
    if failures:
        raise typer.Exit(1)


@app.command()
@handle_errors
def fingerprints(
    directory: DirOption = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="The table docs/wire-format.md lists.")] = False,
) -> None:
    """Every known writer schema with its CRC-64-AVRO fingerprint, as SOE carries it."""
    table = fingerprint_rows(load_schemas(_folder(directory)))
    if markdown:
        print("\n".join(markdown_table(table)))
        return
    for file, alert_type, wire, signed in table:
        print(f"{wire}  {signed:>20}  {alert_type:<22} {file}")


def fingerprint_rows(schemas: SchemaSet) -> list[tuple[str, str, str, int]]:
    """(file, alert type, the 8 SOE bytes in hex, the value as Java's signed `long`), by file name."""
    rows = []
    for fp, (alert_type, file) in schemas.fingerprints().items():
        rows.append((file, alert_type, fp.hex(), int.from_bytes(fp, "little", signed=True)))
    return sorted(rows)


def markdown_table(rows: list[tuple[str, str, str, int]]) -> list[str]:
    lines = ["| schema file | alert type | fingerprint: the 8 SOE bytes (hex) | as a Java `long` |",
             "|---|---|---|---|"]
    lines += [f"| `{file}` | `{alert_type}` | `{wire}` | `{signed}` |" for file, alert_type, wire, signed in rows]
    return lines

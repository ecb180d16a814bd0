"""`bus stix`: alerts as STIX 2.1 bundles, and the JSON Schemas of our STIX extensions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bus.cli._alert_source import AlertSource, alert_source_options, read_alerts
from bus.cli._common import KafkaSettings, err, fail, handle_errors, kafka_options, out

app = typer.Typer(no_args_is_help=True)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "stix"


@app.command()
@kafka_options
@handle_errors
@alert_source_options
def export(
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Write the bundle here, not to stdout.")] = None,
    *,
    src: AlertSource,
    settings: KafkaSettings,
) -> None:
    """One STIX 2.1 bundle of the alerts in a file or a topic range.

    Ids are derived from each alert's message id and timestamps from its
    `created`, so exporting the same alerts again gives the same bundle.
    """
    from bus.interop.stix import export_bundle

    alerts = read_alerts(src, settings)
    text = export_bundle(alerts).serialize(pretty=True) + "\n"
    if out_file is None:
        typer.echo(text, nl=False)
    else:
        out_file.write_text(text, encoding="utf-8")
    err.print(f"exported {len(alerts)} alert(s) as STIX 2.1" + (f" to {escape(str(out_file))}" if out_file else ""),
              highlight=False, soft_wrap=True)


@app.command()
def schemas(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the schemas to.")] = SCHEMA_DIR,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if the committed schemas are stale.")] = False,
) -> None:
    """The JSON Schemas of the EPA STIX extensions, generated from the alert models.

    Point stix2-validator at the folder (`stix2_validator --schemas DIR`) to check
    exported bundles against them offline.
    """
    from bus.interop.stix_schemas import render

    files = render()
    if check:
        stale = sorted(n for n, text in files.items()
                       if not (out_dir / n).exists() or (out_dir / n).read_text(encoding="utf-8") != text)
        if stale:
            fail(f"stale in {out_dir}: {', '.join(stale)}; run `bus stix schemas --out {out_dir}`", code=1)
        out.print(f"{out_dir} is up to date", highlight=False)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    err.print(f"wrote {len(files)} schema(s) to {escape(str(out_dir))}", highlight=False, soft_wrap=True)

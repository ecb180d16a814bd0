"""The `bus` command: one module per command group, composed here."""

from __future__ import annotations

import typer

from bus.cli import (
    audit,
    broker,
    connector,
    console,
    federation,
    keys,
    misp,
    policy,
    provision,
    publish,
    receipts,
    router,
    schema,
    stix,
    tail,
)

app = typer.Typer(
    name="bus",
    help="European Ports Alliance intelligence bus: signed Avro alerts on Apache Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _quiet_libraries() -> None:
    """Human-facing commands print their own output; services reconfigure logging themselves."""
    from bus.logs import quiet

    quiet()


app.add_typer(broker.app, name="broker", help="Run a local Apache Kafka broker (KRaft).")
app.add_typer(policy.app, name="policy", help="Explain and test routing policies.")
app.add_typer(federation.app, name="federation", help="Manage the signed federation directory.")
app.add_typer(router.app, name="router", help="Run the policy router.")
app.add_typer(audit.app, name="audit", help="Inspect the hash-chained audit trail.")
app.add_typer(connector.app, name="connector", help="Run connectors.")
app.add_typer(stix.app, name="stix", help="Export alerts as STIX 2.1 bundles.")
app.add_typer(misp.app, name="misp", help="Export alerts as a MISP feed.")
app.add_typer(schema.app, name="schema", help="Check schema evolution; list schema fingerprints.")
app.add_typer(console.app, name="console", help="The liaison officer's web console over the member's feed.")
keys.register(app)
publish.register(app)
tail.register(app)
provision.register(app)
receipts.register(app)


def main() -> None:
    app()

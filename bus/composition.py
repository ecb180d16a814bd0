"""The composition root: settings -> Kafka engine -> services. The one place they are wired.

The CLI, the demo, the connectors, the public API (`bus.api`) and the tests all
build their services here, so an engine choice (`--engine`, `BUS_KAFKA_ENGINE`,
`engine:` in the config file) or an injected engine reaches every one of them the
same way (cosmicpython calls this `bootstrap`):

    bus = bootstrap(config_file, bootstrap="127.0.0.1:9092")    # settings from flags/env/file
    with bus.publisher(signer) as publisher:
        publisher.publish_many(alerts)

    bus = Bus(engine=MemoryEngine())                             # a unit test: no broker
    bus.ensure_alert_topics()

Services receive what they need (a producer, an engine, an admin client, the schemas)
and never read settings or open clients of their own.

The router (`Bus.router`) and what members do with it (receipts, acknowledgements, the
audit checks) are built here too, from `self.engine`, `self.schemas` and `self.empact_codes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.adapters.kafka import Admin, Engine, Polled, open_engine, reading
from bus.adapters.schema_files import default_empact_codes, default_schemas
from bus.config import KafkaSettings, load_settings
from bus.core import topology
from bus.core.codec import SchemaSet
from bus.core.codelists import EmpactCodeList
from bus.core.confidential import Decryptor, EncryptionPolicy
from bus.core.keyring import KeyResolver
from bus.core.keys import SigningKey
from bus.core.models import AlertType
from bus.core.signing import V1_0_ACCEPTED_UNTIL

if TYPE_CHECKING:  # services are imported when first built: `import bus` stays light
    from collections.abc import Callable

    from bus.adapters.member_kit import KitConnection
    from bus.adapters.secrets_file import SecretsFile
    from bus.core.acl_plan import BusNames
    from bus.core.policy import Policy
    from bus.core.trust import FederationDirectory
    from bus.services.acks import Acknowledger
    from bus.services.audit import AuditReport, MemberAuditReport
    from bus.services.provision import ProvisionReport
    from bus.services.publisher import Publisher
    from bus.services.reader import FeedReader
    from bus.services.receipts import ReceiptReader
    from bus.services.router import Loader, Router, RouterIdentity, RouterOptions
    from bus.web.console.acks import ServiceAcknowledger


class Bus:
    """Settings, the engine they name, and the services built on it.

    `engine` replaces the one the settings name (a `MemoryEngine` in unit tests);
    `schemas` and `empact_codes` default to the shipped files.
    """

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        *,
        engine: Engine | None = None,
        schemas: SchemaSet | None = None,
        empact_codes: EmpactCodeList | None = None,
    ) -> None:
        self.settings = settings if settings is not None else KafkaSettings()
        self.engine = engine if engine is not None else open_engine(self.settings)
        self.schemas = schemas if schemas is not None else default_schemas()
        self.empact_codes = empact_codes if empact_codes is not None else default_empact_codes()

    def describe(self) -> str:
        """Where this bus connects, for messages (never the password)."""
        return f"{self.settings.describe()} [{self.engine.name}]"

    # -- admin helpers ---------------------------------------------------------------------------

    @contextmanager
    def admin(self) -> Iterator[Admin]:
        """An admin client, closed afterwards."""
        client = self.engine.admin()
        try:
            yield client
        finally:
            client.close()

    def replication(self) -> topology.Replication:
        """The replication rule for this cluster's size (`topology.Replication.for_cluster`)."""
        with self.admin() as admin:
            return topology.Replication.for_cluster(admin.describe_cluster().brokers)

    def ensure_topics(self, specs: Iterable[topology.TopicSpec]) -> list[str]:
        """Create the topics that are missing; return their names. A principal that may not
        create topics skips them (they are `bus provision`'s job on a secured cluster)."""
        with self.admin() as admin:
            return reading.ensure_topics(admin, specs)

    def ensure_alert_topics(self) -> list[str]:
        """`alerts.<type>` for every alert type, co-partitioned, replicated for this cluster."""
        with self.admin() as admin:
            existing = admin.list_topics()
            wanted = [topology.alert_topic(t.value) for t in AlertType]
            if all(name in existing for name in wanted):
                return []
            replication = topology.Replication.for_cluster(admin.describe_cluster().brokers)
            specs = topology.core_topics([t.value for t in AlertType], replication)
            return reading.ensure_topics(admin, [s for s in specs if s.name in wanted])

    def read_to_end(self, topic: str, *, last: int | None = None, timeout: float = 60.0) -> list[Polled]:
        """Every committed record of `topic` up to its current end (`bus.adapters.kafka.reading`)."""
        return reading.read_to_end(self.engine, topic, last=last, timeout=timeout)

    # -- services ----------------------------------------------------------------------------------

    def publisher(
        self,
        signer: SigningKey,
        *,
        encryption: EncryptionPolicy | None = None,
        create_topics: bool = False,
        client_id: str | None = None,
    ) -> Publisher:
        """A publisher signing as `signer.member`. `create_topics`: create the alert topics first
        if they are missing (a development broker; on a secured cluster they are provisioned)."""
        from bus.services.publisher import Publisher

        if create_topics:
            self.ensure_alert_topics()
        return Publisher(self.engine.producer(client_id=client_id), signer, schemas=self.schemas,
                         encryption=encryption)

    def feed_reader(
        self,
        topics: str | Sequence[str],
        resolver: KeyResolver,
        *,
        group_id: str | None = None,
        from_beginning: bool = True,
        follow: bool = False,
        idle_timeout: float = 3.0,
        since: datetime | None = None,
        new_position: bool = False,
        auto_commit: bool = True,
        accept_v1_0_until: datetime = V1_0_ACCEPTED_UNTIL,
        decryptor: Decryptor | None = None,
    ) -> FeedReader:
        """A reader that verifies every record of `topics` against `resolver`. With `group_id`
        it resumes where the group left off (unless `since` or `new_position`) and commits
        after each batch, or only when told (`auto_commit=False`, `FeedReader.commit()`)."""
        from bus.services.reader import FeedReader

        return FeedReader(self.engine, [topics] if isinstance(topics, str) else list(topics), resolver,
                          group_id=group_id, from_beginning=from_beginning, follow=follow,
                          idle_timeout=idle_timeout, schemas=self.schemas, empact_codes=self.empact_codes,
                          since=since, new_position=new_position, auto_commit=auto_commit,
                          accept_v1_0_until=accept_v1_0_until, decryptor=decryptor)

    def member_kit_connection(
        self,
        directory: FederationDirectory,
        member: str,
        secrets: SecretsFile,
        *,
        bootstrap: str | None = None,
        security_protocol: str | None = None,
        ca_file: Path | None = None,
        engine_for: Callable[[KafkaSettings], Engine] | None = None,
    ) -> KitConnection:
        """A member's connection for its kit, checked: provisioned, and its password logs in
        (`bus.services.member_kit`). `engine_for` opens the engine the login is tried on
        (default: `open_engine`, the one the settings name)."""
        from bus.services.member_kit import kit_connection

        def login(settings: KafkaSettings) -> None:
            admin = (engine_for or open_engine)(settings).admin()
            try:
                admin.list_topics()
            finally:
                admin.close()

        with self.admin() as admin:
            return kit_connection(admin, login, self.settings, directory, member, secrets, bootstrap=bootstrap,
                                  security_protocol=security_protocol, ca_file=ca_file)

    def provision(
        self,
        directory: FederationDirectory,
        policy: Policy,
        secrets: SecretsFile,
        *,
        partitions: int = topology.ROUTING_PARTITIONS,
        replication: int | None = None,
        dry_run: bool = False,
        rotate_passwords: bool = False,
        generate_missing: bool = True,
        names: BusNames | None = None,
        settle_timeout: float = 15.0,
    ) -> ProvisionReport:
        """Topics, SCRAM users and ACLs for this directory and policy (`bus.services.provision`).
        The connecting user's own grants are never revoked."""
        from bus.core.acl_plan import principal
        from bus.services.provision import provision

        protected = ["User:admin", "User:ANONYMOUS"]
        if self.settings.sasl_username:
            protected.append(principal(self.settings.sasl_username))
        with self.admin() as admin:
            return provision(admin, directory, policy, secrets, partitions=partitions, replication=replication,
                             dry_run=dry_run, rotate_passwords=rotate_passwords,
                             generate_missing=generate_missing, protected_principals=protected,
                             settle_timeout=settle_timeout, names=names, target=self.settings.describe())

    # -- the router and what members do with it ---------------------------------------------------

    def router(
        self,
        load: Loader,
        identity: RouterIdentity,
        options: RouterOptions | None = None,
        *,
        changed: Callable[[], bool] | None = None,
    ) -> Router:
        """A router instance on this engine (`bus.services.router`); `run()` routes until stopped.
        It creates the topics it needs where the principal may (an unsecured development
        cluster); on a secured one they are `bus provision`'s job."""
        from bus.services.router import Router

        return Router(self.engine, load, identity, options=options, changed=changed, schemas=self.schemas,
                      empact_codes=self.empact_codes)

    def receipt_reader(self, member: str, directory: FederationDirectory) -> ReceiptReader:
        """`receipts.<member>`, every record verified against the directory's router and member keys."""
        from bus.services.receipts import ReceiptReader

        return ReceiptReader(self.engine, member, directory)

    def acknowledger(self, signer: SigningKey, *, feed: str | None = None) -> Acknowledger:
        """Acknowledgements as `signer.member`, of alerts found in its feed (`feed.<member>` by default)."""
        from bus.services.acks import Acknowledger

        return Acknowledger(self.engine, signer, feed=feed)

    def console_acknowledger(self, signer: SigningKey, *, feed: str | None = None) -> ServiceAcknowledger:
        """The console's acknowledge buttons on the same service as `bus ack` (signed as `signer.member`)."""
        from bus.web.console.acks import ServiceAcknowledger

        return ServiceAcknowledger(self.acknowledger(signer, feed=feed))

    def verify_audit(self, directory: FederationDirectory, *, topic: str = topology.AUDIT_TOPIC,
                     checkpoints_topic: str = topology.AUDIT_CHECKPOINTS_TOPIC) -> AuditReport:
        """The auditor's check of every chain and checkpoint (`bus audit verify`)."""
        from bus.services.audit import verify_audit

        return verify_audit(self.engine, directory, self.principal, topic=topic, checkpoints_topic=checkpoints_topic)

    def verify_member_audit(self, member: str, directory: FederationDirectory) -> MemberAuditReport:
        """A member's check of its own audit entries (`bus audit verify --member`)."""
        from bus.services.audit import verify_member_audit

        return verify_member_audit(self.engine, member, directory, self.principal)

    @property
    def principal(self) -> str:
        """Who this bus connects as, for messages."""
        return self.settings.sasl_username or "an anonymous client"


def bootstrap(config_file: Path | None = None, **overrides: Any) -> Bus:
    """A `Bus` from settings: flags (`overrides`, None = not given; `engine="kafka-python"` picks
    the engine) > `BUS_*` environment > the YAML config file (`config_file` or `BUS_CONFIG`) >
    defaults (`bus.config.load_settings`). To inject an engine, use `Bus(settings, engine=...)`."""
    return Bus(load_settings(config_file, **overrides))


__all__ = ["Bus", "bootstrap"]

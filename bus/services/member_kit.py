"""What goes into a member kit, checked against the cluster before it is handed over.

A kit with a password the cluster does not know, or for a user that was never
provisioned, would send the member off to debug "authentication failed" alone. So before
`bus.adapters.member_kit` writes anything this service checks, as the operator:

1. the member is in the (verified) federation directory (or the kit is a service's:
   `svc-router`, `svc-auditor`);
2. the secrets (`BUS_SECRET_<USER>` or the secrets file) hold a password for its SCRAM user;
3. the cluster has a SCRAM credential for that user (`bus provision` ran);
4. that password logs in, through the operator's own connection (the address the member
   will use may not be reachable from here: it is written, not tried).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from bus.adapters.kafka import Admin
from bus.adapters.member_kit import TLS_PROTOCOLS, KitConnection
from bus.adapters.secrets_file import SecretsFile, env_name
from bus.config import KafkaSettings
from bus.core.acl_plan import AUDITOR_USER, ROUTER_USER, user_name
from bus.core.trust import FederationDirectory
from bus.errors import AuthenticationFailed, InvalidInput, ProvisionError

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
SERVICE_USERS = (ROUTER_USER, AUDITOR_USER)
"""Users a kit can also be written for: the services' own principals."""

Login = Callable[[KafkaSettings], None]
"""Connect with these settings and do one thing that needs a login; raise the port's errors."""


def kit_connection(
    admin: Admin,
    login: Login,
    operator: KafkaSettings,
    directory: FederationDirectory,
    member: str,
    secrets: SecretsFile,
    *,
    bootstrap: str | None = None,
    security_protocol: str | None = None,
    ca_file: Path | None = None,
) -> KitConnection:
    """The member's checked connection: `operator`'s own address, protocol and CA unless given.

    `member` is a member id of the directory, or a service's user (`SERVICE_USERS`).
    """
    if member not in SERVICE_USERS and directory.member(member) is None:
        raise InvalidInput(f"{member} is not a member of federation directory {directory.federation_id} "
                           f"v{directory.version} (nor {' or '.join(SERVICE_USERS)}); add it (bus federation "
                           "add-member) and provision first", [("--kit", "not a member")])
    protocol = security_protocol or operator.security_protocol
    if protocol not in SASL_PROTOCOLS:
        raise InvalidInput(f"a member kit needs a SASL protocol (members log in with SCRAM), not {protocol}: "
                           "give --kit-security-protocol SASL_SSL (or SASL_PLAINTEXT) and --kit-bootstrap",
                           [("--kit-security-protocol", "not SASL")])
    user = member if member in SERVICE_USERS else user_name(member)
    password = secrets.password(user)
    target = operator.describe()
    if password is None:
        raise ProvisionError(f"no password for {user} in {secrets.path or 'the secrets'} or ${env_name(user)}: "
                             "run `bus provision` first (it generates the passwords of new members)")
    if user not in admin.scram_users():
        raise ProvisionError(f"{user} has no SCRAM credential on {target} yet: run `bus provision` first")
    try:
        login(_as_member(operator, user, password))
    except AuthenticationFailed:
        raise ProvisionError(
            f"the password for {user} from {secrets.source(user)} does not log in at {target}: the cluster "
            "holds another one; put the right one there, or set this one with `bus provision "
            "--rotate-passwords` (then restart the member's clients)") from None
    cafile = ca_file if ca_file is not None else operator.ssl_cafile if protocol in TLS_PROTOCOLS else None
    return KitConnection(bootstrap=bootstrap or operator.bootstrap, security_protocol=protocol, user=user,
                         password=password, ca_file=cafile)


def _as_member(operator: KafkaSettings, user: str, password: SecretStr) -> KafkaSettings:
    """The operator's transport with the member's credentials; a SCRAM login either way."""
    protocol = operator.security_protocol if operator.security_protocol in SASL_PROTOCOLS else \
        "SASL_SSL" if operator.security_protocol == "SSL" else "SASL_PLAINTEXT"
    return operator.model_copy(update={"sasl_username": user, "sasl_password": password,
                                       "sasl_mechanism": "SCRAM-SHA-512", "security_protocol": protocol})


__all__ = ["SERVICE_USERS", "Login", "kit_connection"]

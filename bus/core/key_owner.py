"""Whose signing key is this? Refuse a mistake a sender can know about before anything goes out.

A member signing with another member's key (`--member NL-CUSTOMS --key EUROPOL.key`)
publishes alerts the router can only dead-letter as `key-not-owned-by-producer`, and a
sender may never read `dlq.rejected`. Where the sender can know better, it refuses:

- a federation directory that lists the key decides (a key id is the key's thumbprint and
  the directory lists each key for one member only);
- otherwise the key file's member label decides: `bus keygen` names a member's key
  `<MEMBER>.key`, so `EUROPOL.key` given as NL-CUSTOMS's key is almost surely a mix-up.

A key the directory does not list is not refused: the router may hold a newer directory
that does. `key_note` says so, and names a listed key that is revoked, expired or not yet
valid now, as a warning: the sender decides.
"""

from __future__ import annotations

from datetime import datetime

from bus.core.trust import FederationDirectory, KeyStatus, KeyUse, rfc3339
from bus.errors import KeyOwnerMismatch

NOTHING_SENT = "nothing was sent"


def check_key_owner(
    key_id: str,
    member: str,
    *,
    directory: FederationDirectory | None = None,
    file_label: str | None = None,
    key_source: str = "the signing key",
) -> None:
    """Raise `KeyOwnerMismatch` if the key is known to be another member's than `member`.

    `file_label` is the member the key file is named after (None if its name says nothing);
    `key_source` names the key in the message (its file).
    """
    found = directory.find_key(key_id) if directory is not None else None
    if directory is not None and found is not None:
        owner = found[0].id
        if owner != member:
            raise KeyOwnerMismatch(
                f"{key_source} (key {key_id}) belongs to {owner} in federation directory "
                f"{directory.federation_id} v{directory.version}, not to --member {member}; {NOTHING_SENT} "
                f"(sign with {member}'s own key, or publish as {owner})",
                [("--key", f"belongs to {owner}")],
            )
        return
    if file_label is not None and file_label != member:
        raise KeyOwnerMismatch(
            f"{key_source} is named for member {file_label}, not for --member {member}; {NOTHING_SENT} "
            f"(sign with {member}'s own key; if this file really is {member}'s key, name it {member}.key)",
            [("--key", f"named for {file_label}")],
        )


def key_note(key_id: str, member: str, directory: FederationDirectory, at: datetime) -> str | None:
    """Why the router is likely to reject alerts `member` signs at `at` with this key, or None.

    Only for a key the directory does not list, or lists for `member` but not valid at `at`;
    another member's key is `check_key_owner`'s business.
    """
    version = f"federation directory {directory.federation_id} v{directory.version}"
    found = directory.find_key(key_id)
    if found is None:
        return (f"{version} does not list key {key_id}: the router will reject these alerts as unknown-key "
                f"unless its directory is newer (ask the federation authority to add the key)")
    owner, key = found
    if owner.id != member or key.use is not KeyUse.SIGNING:
        return None
    status = key.status_at(at)
    if status is KeyStatus.VALID:
        return None
    when = {
        KeyStatus.REVOKED: f"revoked since {rfc3339(key.revoked_at)}" if key.revoked_at else "revoked",
        KeyStatus.EXPIRED: f"expired since {rfc3339(key.not_after)}",
        KeyStatus.NOT_YET_VALID: f"not valid before {rfc3339(key.not_before)}",
    }[status]
    return f"{version}: key {key_id} of {member} is {when}; the router will reject these alerts as key-{status.value}"


__all__ = ["check_key_owner", "key_note"]

"""Annual expiry of mail registrations (item 4, K2): at each yearly boundary of the
registration's annual retention rule (31 March 23:59 JST unless configured), every mail
subscriber whose registration began before it is deleted with its answers, and a signed
deletion receipt holding an HMAC of the address (never the address) is written for each, as
for LINE residents.

`run_annual` is what the daemon runs (the mail component, every minute): it applies the annual
rule of the city's retention rules for the registration (scope "registration"), if the city has
one, to every boundary since its last run (kept in settings, as the program expiry does), and
the March notice before it goes by mail once per subscriber (kairand.mail.notices)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.retention import rules
from kairand.retention.purge import record_deletion
from kairand.store import mail as mail_store
from kairand.store import retention as retention_store
from kairand.store import settings
from kairand.store.database import Connection

LAST_RUN_KEY = "mail.expiry_last_run"


def registration_policy(conn: Connection) -> rules.Annual | None:
    """The annual rule of the city's registrations (the retention rules in force), or None."""
    loaded = rules.from_stored(retention_store.current_rules(conn))
    current = loaded[2] if loaded else rules.DEFAULT_RULES
    for rule in current.annual_rules():
        if rule.scope == "registration" and isinstance(rule.policy, rules.Annual):
            return rule.policy
    return None


def run_annual(conn: Connection, now: int, hmac_key: bytes, signing_key: Ed25519PrivateKey) -> int:
    """Apply the registration's annual rule to mail subscribers for every boundary since the
    last run (the first run only records itself: nothing before it is applied afterwards);
    in the caller's transaction. How many registrations expired."""
    last = settings.get(conn, LAST_RUN_KEY)
    settings.put(conn, LAST_RUN_KEY, now)
    policy = registration_policy(conn)
    if policy is None or last is None:
        return 0
    return expire_annual(
        conn, policy, last_run=int(last), now=now, hmac_key=hmac_key, signing_key=signing_key
    )


def expire_annual(
    conn: Connection,
    policy: rules.Annual,
    *,
    last_run: int,
    now: int,
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
) -> int:
    """Delete the registrations expired by boundaries in (LAST_RUN, NOW]; returns how many.
    Runs in the caller's transaction; a second run over the same span deletes nothing more."""
    boundaries = rules.boundaries_between(policy, last_run, now)
    if not boundaries:
        return 0
    expired = 0
    for address in mail_store.created_before(conn, boundaries[-1]):
        deleted = mail_store.delete(conn, address)
        if deleted is None:
            continue
        record_deletion(
            conn,
            line_user_id=address,  # the subject: only its HMAC is stored
            reason="annual_expiry",
            deleted=deleted,
            now=now,
            hmac_key=hmac_key,
            signing_key=signing_key,
            actor="system:retention",
            action="mail_subscriber.expire",
            audit_detail={"boundary": boundaries[-1], **deleted},
        )
        expired += 1
    if expired:
        mail_store.bump(conn, "annual_expired", expired)
    return expired

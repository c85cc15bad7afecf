"""Annual expiry of mail registrations with receipts (K2, K9, S8)."""

from __future__ import annotations

import datetime as dt

import pytest

from kairand.keys import secrets
from kairand.mail.expiry import expire_annual
from kairand.retention.receipts import subject_hmac, verify_receipt
from kairand.retention.rules import Annual
from kairand.store import mail as mail_store
from kairand.store import receipts
from kairand.store.database import Connection, Store
from kairand.timeutil import JST


def at(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=JST).timestamp())  # type: ignore[misc, arg-type]


def add(conn: Connection, address: str, created: int) -> None:
    mail_store.save(
        conn,
        address,
        stage="registered",
        stop_token=address.split("@")[0] + "-token-xxxxxxxx",
        confirm_code=None,
        attempts=0,
        question=0,
        answers={"area": ("honmachi",), "gender": ()},
        now=created,
    )


@pytest.mark.req("K2")
@pytest.mark.req("K9")
def test_registrations_before_the_boundary_expire_with_receipts(store: Store) -> None:
    hmac_key, signing = secrets.receipt_hmac_key(), secrets.signing_key()
    store.write_sync(add, "old@example.net", at(2026, 3, 31, 23, 58))
    store.write_sync(add, "new@example.net", at(2026, 3, 31, 23, 59, 30))
    policy = Annual()
    # Before the boundary nothing happens.
    n = store.write_sync(
        lambda c: expire_annual(
            c,
            policy,
            last_run=at(2026, 3, 1),
            now=at(2026, 3, 31, 23, 58, 59),
            hmac_key=hmac_key,
            signing_key=signing,
        )
    )
    assert n == 0
    run = {
        "policy": policy,
        "last_run": at(2026, 3, 31, 23, 58, 59),
        "now": at(2026, 4, 1, 3, 0),
        "hmac_key": hmac_key,
        "signing_key": signing,
    }
    assert store.write_sync(lambda c: expire_annual(c, **run)) == 1  # type: ignore[arg-type]
    assert store.read_sync(mail_store.load, "old@example.net") is None
    assert store.read_sync(mail_store.load, "new@example.net") is not None
    # Idempotent: the same span again deletes nothing more.
    assert store.write_sync(lambda c: expire_annual(c, **run)) == 0  # type: ignore[arg-type]
    (receipt,) = store.read_sync(receipts.for_subject, subject_hmac(hmac_key, "old@example.net"))
    assert receipt.reason == "annual_expiry"
    assert receipt.deleted == {"mail_subscriber": 1, "answers": 1}
    assert verify_receipt(receipt, signing.public_key())
    assert "old@" not in repr(receipt)
    assert store.read_sync(mail_store.counters)["annual_expired"] == 1


@pytest.mark.req("S8")
def test_expiry_is_audited_without_the_address(store: Store) -> None:
    hmac_key, signing = secrets.receipt_hmac_key(), secrets.signing_key()
    store.write_sync(add, "gone@example.net", at(2025, 6, 1))
    store.write_sync(
        lambda c: expire_annual(
            c,
            Annual(),
            last_run=at(2026, 1, 1),
            now=at(2026, 4, 2),
            hmac_key=hmac_key,
            signing_key=signing,
        )
    )
    rows = store.read_sync(lambda c: c.execute("SELECT * FROM audit_log").fetchall())
    text = repr(rows)
    assert "mail_subscriber.expire" in text
    assert "gone@" not in text


@pytest.mark.req("K9")
@pytest.mark.req("S8")
def test_kairanctl_mail_status_shows_counts_only(
    dev_setup: object, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from kairand import ctl

    store.write_sync(add, "shown@example.net", at(2026, 5, 1))
    store.write_sync(mail_store.claim_send, 1, 1, "<a@kairan.invalid>", 1)
    store.write_sync(mail_store.recover_pending, 2)
    assert ctl.main(["--config", str(dev_setup), "mail", "status"]) == 1  # unconfirmed: flag
    out = capsys.readouterr().out
    assert "登録済み / registered: 1" in out
    assert "unconfirmed: 1" in out and "送信サーバーの記録" in out
    assert "@" not in out.replace("Message-IDs", "")


@pytest.mark.req("K9")
def test_kairanctl_mail_status_flags_an_unconfirmed_notice(
    dev_setup: object, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """A re-consent or March notice left pending by a crash is 'unconfirmed' after recovery:
    counted apart from the alerts' sends, and flagged like them (exit 1), never resent."""
    from kairand import ctl

    store.write_sync(add, "shown@example.net", at(2026, 5, 1))
    sid = store.read_sync(mail_store.load, "shown@example.net").id  # type: ignore[union-attr]
    store.write_sync(mail_store.claim_notice, sid, "kodomo@consent2", "<n@kairan.invalid>", 1, 5)
    assert store.write_sync(mail_store.recover_pending_notices, 2) == 1
    assert ctl.main(["--config", str(dev_setup), "mail", "status"]) == 1
    out = capsys.readouterr().out
    notices = out.split("お知らせ（再同意・年度更新） / notices:")[1]
    assert "unconfirmed: 1" in notices.split("不達通知")[0]
    assert "@" not in out.replace("Message-IDs", "")

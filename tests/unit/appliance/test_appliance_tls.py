"""Webhook TLS: pair validation, installation with safe modes, expiry monitoring (N7)."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kairand import ctl, tls
from kairand.config import load_config
from kairand.errors import ConfigError, DataError, ExitCode
from kairand.store import settings
from kairand.store.bootstrap import open_store, select_keyring


def write_pair(folder: Path, name: str, **kwargs) -> tuple[Path, Path]:
    cert_pem, key_pem = tls.self_signed("webhook.example-city.jp", **kwargs)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


def test_valid_pair_loads_into_a_server_context(tmp_path: Path) -> None:
    """N7: a matching pair gives a TLS ≥ 1.2 server context."""
    cert, key = write_pair(tmp_path, "a")
    leaf = tls.validate_pair(cert, key)
    assert leaf.subject.rfc4514_string() == "CN=webhook.example-city.jp"
    ctx = tls.load_server_context(cert, key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_mismatched_expired_encrypted_and_garbage_are_refused(tmp_path: Path) -> None:
    """N7: a key of another certificate, an expired certificate, a passphrase-protected key and
    non-PEM input are each refused with their own clear message."""
    cert_a, _ = write_pair(tmp_path, "a")
    _, key_b = write_pair(tmp_path, "b")
    with pytest.raises(DataError, match="does not belong"):
        tls.validate_pair(cert_a, key_b)
    old_cert, old_key = write_pair(
        tmp_path, "old", days=30, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
    )
    with pytest.raises(DataError, match="expired"):
        tls.validate_pair(old_cert, old_key)
    cert_c, key_c = write_pair(tmp_path, "c")
    private = serialization.load_pem_private_key(key_c.read_bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    key_c.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(DataError, match="passphrase"):
        tls.validate_pair(cert_c, key_c)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(DataError, match="no PEM certificate"):
        tls.validate_pair(junk, key_b)
    with pytest.raises(ConfigError):
        tls.load_server_context(tmp_path / "missing.crt", key_b)


def test_health_statuses_around_the_warning_threshold(tmp_path: Path) -> None:
    """N7/S9 health: ok beyond 30 days, warning within 30 days, expired after, missing file."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert, _ = write_pair(tmp_path, "a", days=90, not_before=start)
    not_after = tls.certificate_expiry(cert)
    assert not_after == start + dt.timedelta(days=90)
    at = lambda days_left: not_after - dt.timedelta(days=days_left, hours=1)  # noqa: E731
    assert tls.certificate_health(cert, now=at(45)).status == "ok"
    assert tls.certificate_health(cert, now=at(tls.WARN_DAYS)).status == "ok"
    warning = tls.certificate_health(cert, now=at(tls.WARN_DAYS - 1))
    assert (warning.status, warning.days_left) == ("warning", tls.WARN_DAYS - 1)
    assert "あと 29 日" in tls.describe(warning)
    expired = tls.certificate_health(cert, now=not_after + dt.timedelta(seconds=1))
    assert expired.status == "expired" and not expired.ok
    assert tls.certificate_health(tmp_path / "none.crt").status == "missing"
    assert tls.certificate_health(None).status == "not_configured"


def test_kairanctl_tls_install_copies_with_safe_modes(tmp_path: Path, dev_setup: Path) -> None:
    """N7: `kairanctl tls install` validates, then installs the key unreadable by others and
    the certificate world-readable, at the configured paths; a bad pair changes nothing."""
    dest = tmp_path / "tls"
    paths = f'tls_cert = "{dest}/webhook.crt"\ntls_key = "{dest}/webhook.key"\n'
    config_text = dev_setup.read_text().replace("[webhook]\n", "[webhook]\n" + paths, 1)
    dev_setup.write_text(config_text)
    cert, key = write_pair(tmp_path, "a")
    _, other_key = write_pair(tmp_path, "b")
    rc = ctl.main(["--config", str(dev_setup), "tls", "install", str(cert), str(other_key)])
    assert rc == ExitCode.DATA
    assert not (dest / "webhook.key").exists()
    assert ctl.main(["--config", str(dev_setup), "tls", "install", str(cert), str(key)]) == 0
    key_mode = stat.S_IMODE((dest / "webhook.key").stat().st_mode)
    assert key_mode & 0o037 == 0
    assert stat.S_IMODE((dest / "webhook.crt").stat().st_mode) == 0o644
    assert (dest / "webhook.key").read_bytes() == key.read_bytes()
    assert ctl.main(["--config", str(dev_setup), "tls", "status"]) == 0
    # The expiry is also noted in the store's settings for the health screen.
    config = load_config(dev_setup)
    select_keyring(config)
    store = open_store(config)
    try:
        noted = store.read_sync(settings.get, tls.NOT_AFTER_SETTING)
    finally:
        store.close()
    assert noted == int(tls.certificate_expiry(cert).timestamp())

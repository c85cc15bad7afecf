"""The webhook's TLS certificate: server context, installation, and expiry monitoring.

TLS terminates in kairand (on the webhook unix socket), so the relay only forwards ciphertext.
The certificate is installed with `kairanctl tls install CERT KEY`; health and `kairanctl doctor`
warn WARN_DAYS before it expires.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import ipaddress
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from kairand.errors import ConfigError, DataError

WARN_DAYS = 30


def load_server_context(cert: Path, key: Path | None) -> ssl.SSLContext:
    """A TLS server context for the webhook (TLS 1.2+, the chain in CERT, the key in KEY; with
    KEY None the key is read from CERT, as `ssl` allows)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key) if key else None)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"webhook TLS file {exc.filename} does not exist",
            "install the certificate with `kairanctl tls install CERT KEY`",
        ) from None
    except ssl.SSLError as exc:
        raise ConfigError(
            f"the webhook certificate {cert} and key {key} cannot be used together: {exc.reason}",
            "check that the key belongs to the certificate; reinstall with `kairanctl tls install`",
        ) from None
    return ctx


def _read_chain(cert: Path) -> list[x509.Certificate]:
    try:
        data = cert.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the certificate {cert}: {exc.strerror}") from None
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        chain = []
    if not chain:
        raise DataError(
            f"{cert} holds no PEM certificate",
            "give the certificate (and its intermediates) in PEM form, leaf first",
        )
    return chain


def certificate_expiry(cert: Path) -> dt.datetime:
    """When the leaf certificate in CERT stops being valid (aware, UTC)."""
    return _read_chain(cert)[0].not_valid_after_utc


@dataclass(frozen=True)
class CertificateHealth:
    """What health and doctor show about the webhook certificate."""

    status: str  # "ok", "warning" (< WARN_DAYS left), "expired", "missing", "not_configured"
    not_after: dt.datetime | None
    days_left: int | None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "warning")


def certificate_health(
    cert: Path | None, *, now: dt.datetime | None = None, warn_days: int = WARN_DAYS
) -> CertificateHealth:
    if cert is None:
        return CertificateHealth("not_configured", None, None)
    if not cert.exists():
        return CertificateHealth("missing", None, None)
    not_after = certificate_expiry(cert)
    now = now or dt.datetime.now(dt.UTC)
    left = not_after - now
    days = int(left.total_seconds() // 86400)
    if left.total_seconds() <= 0:
        return CertificateHealth("expired", not_after, days)
    return CertificateHealth("warning" if days < warn_days else "ok", not_after, days)


def _load_key(data: bytes, key: Path) -> object:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise DataError(
            f"the private key {key} is protected by a passphrase",
            "remove it (openssl pkey -in KEY -out KEY.plain): kairand starts unattended",
        ) from None
    except ValueError:
        raise DataError(f"{key} holds no PEM private key") from None


def validate_pair(cert: Path, key: Path, *, now: dt.datetime | None = None) -> x509.Certificate:
    """Check that CERT (PEM chain) and KEY (PEM, unencrypted) match and the leaf is current."""
    leaf = _read_chain(cert)[0]
    try:
        key_data = key.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the key {key}: {exc.strerror}") from None
    private = _load_key(key_data, key)
    if not isinstance(
        private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise DataError(f"{key}: unsupported key type {type(private).__name__}")
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*raw) != leaf.public_key().public_bytes(*raw):
        raise DataError(
            f"the key {key} does not belong to the certificate {cert}",
            "give the private key that was used for this certificate's signing request",
        )
    now = now or dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc <= now:
        raise DataError(
            f"the certificate {cert} expired on {leaf.not_valid_after_utc:%Y-%m-%d}",
            "renew it with the certificate authority first",
        )
    if leaf.not_valid_before_utc > now:
        raise DataError(f"the certificate {cert} is not valid before {leaf.not_valid_before_utc}")
    # The same check the daemon will do at start-up, so a pair accepted here also loads there.
    load_server_context(cert, key)
    return leaf


def _install_file(source: Path, dest: Path, mode: int, gid: int | None) -> None:
    """Copy SOURCE to DEST atomically with MODE (and group GID when given)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            os.fchmod(out.fileno(), mode)
            if gid is not None:
                os.fchown(out.fileno(), -1, gid)
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def install_pair(
    cert: Path, key: Path, dest_cert: Path, dest_key: Path, *, group: str | None = "kairan"
) -> x509.Certificate:
    """Validate CERT/KEY, then copy them to the configured paths: cert 0644, key 0640 with the
    daemon's group (when it exists and we may chown), so only root and kairand read the key."""
    leaf = validate_pair(cert, key)
    gid = None
    if group and os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            gid = grp.getgrnam(group).gr_gid
    _install_file(key, dest_key, 0o640 if gid is not None else 0o600, gid)
    _install_file(cert, dest_cert, 0o644, None)
    return leaf


def self_signed(
    host: str,
    *,
    days: int = 365,
    not_before: dt.datetime | None = None,
    ip_addresses: tuple[str, ...] = (),
) -> tuple[bytes, bytes]:
    """A self-signed certificate and key (PEM) for HOST (and IP_ADDRESSES): training boxes
    and tests only. LINE requires a certificate from a public CA for a real webhook."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, host)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host)]
                + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


NOT_AFTER_SETTING = "tls.not_after"
"""The store setting where `kairanctl tls install` notes the expiry (unix seconds) for health."""


def describe(health: CertificateHealth) -> str:
    """One line, Japanese then English, for doctor and `tls status`."""
    if health.status == "not_configured":
        return "Webhook の証明書が設定されていません / webhook TLS is not configured"
    if health.status == "missing":
        return "Webhook の証明書ファイルがありません / the webhook certificate file is missing"
    assert health.not_after is not None
    until = f"{health.not_after:%Y-%m-%d}"
    if health.status == "expired":
        return f"証明書の有効期限が切れています（{until}） / the certificate expired on {until}"
    if health.status == "warning":
        return (
            f"証明書の有効期限まであと {health.days_left} 日です（{until}）。更新してください"
            f" / the certificate expires in {health.days_left} days ({until}): renew it"
        )
    return (
        f"証明書は有効です（{until} まで、残り {health.days_left} 日）"
        f" / the certificate is valid until {until} ({health.days_left} days left)"
    )

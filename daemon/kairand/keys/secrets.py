"""The appliance's secrets: names, generation, and typed access through keyring."""

from __future__ import annotations

import base64
import secrets as _random
from collections.abc import Mapping

import keyring
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from keyring.backend import KeyringBackend

from kairand.errors import ConfigError, SecretError
from kairand.keys.backends import SERVICE

DB_KEY = "db-key"
CHANNEL_SECRET = "line-channel-secret"  # noqa: S105 - a name, not a value
CHANNEL_ACCESS_TOKEN = "line-channel-access-token"  # noqa: S105
SIGNING_KEY = "signing-key"
RECEIPT_HMAC_KEY = "receipt-hmac-key"
# The city's SMTP relay and registration mailbox: provisioned by the operator,
# optional (only when the mail channel is configured), so not in ALL.
MAIL_SMTP_PASSWORD = "mail-smtp-password"  # noqa: S105 - a name, not a value
MAIL_IMAP_PASSWORD = "mail-imap-password"  # noqa: S105 - a name, not a value

ALL = (DB_KEY, CHANNEL_SECRET, CHANNEL_ACCESS_TOKEN, SIGNING_KEY, RECEIPT_HMAC_KEY)
OPTIONAL = (MAIL_SMTP_PASSWORD, MAIL_IMAP_PASSWORD)
"""Loaded by the unit like the others; install.sh seals an empty placeholder until the
operator gives the real value, so the daemon starts with `[mail] enabled = false` and refuses
to start the mail channel (SecretError naming the credential) while one is empty."""


def use_backend(dotted: str, options: Mapping[str, object] | None = None) -> KeyringBackend:
    """Select the keyring backend named in the config (instead of keyring's own choice)."""
    module_name, _, class_name = dotted.rpartition(".")
    try:
        module = __import__(module_name, fromlist=[class_name])
        cls = getattr(module, class_name)
        backend: KeyringBackend = cls(**{k: v for k, v in (options or {}).items() if v is not None})
    except (ImportError, AttributeError, TypeError, RuntimeError) as exc:
        raise ConfigError(
            f"keyring.backend = {dotted!r} cannot be used: {exc}",
            "name a class such as kairand.keys.backends.DirectoryKeyring",
        ) from None
    keyring.set_keyring(backend)
    return backend


def get_secret(name: str) -> str:
    value = keyring.get_password(SERVICE, name)
    if not value:
        raise SecretError(
            f"secret {name!r} is not available from the keyring"
            f" ({type(keyring.get_keyring()).__name__})",
            f"provision the credential {name!r}"
            " (appliance: systemd-creds; development: kairanctl init --dev)",
        )
    return value


def db_key() -> bytes:
    value = get_secret(DB_KEY)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise SecretError(
            f"secret {DB_KEY!r} is not 64 hexadecimal characters (a 256-bit key)",
            "restore the credential db-key that belongs to this store",
        )
    return raw


def signing_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(get_secret(SIGNING_KEY))
    return Ed25519PrivateKey.from_private_bytes(raw)


def receipt_hmac_key() -> bytes:
    return base64.b64decode(get_secret(RECEIPT_HMAC_KEY))


def generate(name: str) -> str:
    """A fresh value for secret NAME (the LINE ones come from the LINE console)."""
    if name == DB_KEY:
        return _random.token_bytes(32).hex()
    if name == SIGNING_KEY:
        raw = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return base64.b64encode(raw).decode()
    if name == RECEIPT_HMAC_KEY:
        return base64.b64encode(_random.token_bytes(32)).decode()
    if name == CHANNEL_SECRET:
        return _random.token_hex(16)  # same shape as LINE's (32 hex chars); dev/simulator only
    if name == CHANNEL_ACCESS_TOKEN:
        return _random.token_urlsafe(128)
    raise ValueError(name)

"""The sealed backup file format, version 1.

    prefix  = MAGIC (8) | format version (1) | ephemeral X25519 public key (32)
              | manifest length (4, big-endian) | manifest (UTF-8 JSON, not secret)
    records = { final flag (1) | ciphertext length (4) | AES-256-GCM ciphertext+tag }*

The AES key is HKDF-SHA256(X25519(ephemeral, recipient), salt = ephemeral || recipient public
key, info = INFO): a fresh key per file, so nonces can be counters. Record i uses the nonce
i (11 bytes) || final flag (1) and the associated data SHA-256(prefix) || i || final flag. So:
- any change to the manifest or the ephemeral key fails every record (AAD binds the prefix);
- reordering, dropping or duplicating records fails (the index is in nonce and AAD);
- cutting the file after any record is detected (no record carried the final flag);
- bytes after the final record are refused.
Record 0 holds the escrowed secrets (JSON); records 1.. hold the store file; the manifest carries
the SHA-256 and size of the store file, checked again after decryption.

Only the recovery key's holder can open a backup: the appliance keeps just the public key.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kairand.errors import AlreadyExistsError, ConfigError, DataError

MAGIC = b"KAIRANBK"
FORMAT_VERSION = 1
INFO = b"kairan-backup/v1 x25519-hkdf-sha256-aes-256-gcm"
DEFAULT_CHUNK_SIZE = 1024 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
MAX_MANIFEST = 64 * 1024
_TAG = 16


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: X25519PublicKey) -> str:
    """A short, printable name for a recovery key (first 16 bytes of SHA-256 of the raw key)."""
    digest = hashlib.sha256(_raw_public(key)).hexdigest()[:32]
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


# -- recovery keys ------------------------------------------------------------------------------


def generate_recovery_key(private_path: Path, public_path: Path) -> str:
    """Write a new recovery key pair (private 0600 PEM, public 0644 PEM); return the fingerprint.
    Refuses to overwrite either file: losing the old private key loses every old backup."""
    for path in (private_path, public_path):
        if path.exists():
            raise AlreadyExistsError(
                f"{path} already exists: refusing to overwrite a recovery key",
                "choose another file name; keep every private key that still opens a backup",
            )
    private = X25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public = private.public_key()
    public_path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    public_path.chmod(0o644)
    return fingerprint(public)


def load_recipient(path: Path) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"the recovery public key {path} does not exist",
            "create the key pair with `kairanctl backup keygen` and copy the .pub file here",
        ) from None
    except ValueError:
        raise ConfigError(f"{path} is not a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise ConfigError(f"{path} is not an X25519 recovery public key")
    return key


def load_recovery_key(path: Path) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"the recovery key {path} does not exist") from None
    except (ValueError, TypeError):
        raise DataError(
            f"{path} is not an unencrypted PEM private key",
            "give the private recovery key file made by `kairanctl backup keygen`",
        ) from None
    if not isinstance(key, X25519PrivateKey):
        raise DataError(f"{path} is not an X25519 recovery private key")
    return key


# -- writing ------------------------------------------------------------------------------------


def _derive(shared: bytes, ephemeral: bytes, recipient: bytes) -> AESGCM:
    key = HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=INFO).derive(shared)
    return AESGCM(key)


def _nonce_aad(header_hash: bytes, index: int, final: bool) -> tuple[bytes, bytes]:
    flag = b"\x01" if final else b"\x00"
    return index.to_bytes(11, "big") + flag, header_hash + index.to_bytes(8, "big") + flag


class SealedWriter:
    """Write a sealed backup to OUT: `write_record(bytes)` for each record, the last one with
    final=True. Records larger than the manifest's chunk size are refused."""

    def __init__(self, out: BinaryIO, recipient: X25519PublicKey, manifest: dict[str, Any]) -> None:
        ephemeral = X25519PrivateKey.generate()
        eph_raw = _raw_public(ephemeral.public_key())
        manifest = {**manifest, "format": FORMAT_VERSION, "recipient": fingerprint(recipient)}
        self.manifest = manifest
        body = json.dumps(manifest, sort_keys=True, ensure_ascii=False).encode()
        prefix = MAGIC + bytes([FORMAT_VERSION]) + eph_raw + struct.pack(">I", len(body)) + body
        self._aead = _derive(ephemeral.exchange(recipient), eph_raw, _raw_public(recipient))
        self._hash = hashlib.sha256(prefix).digest()
        self._chunk = int(manifest["chunk_size"])
        self._out = out
        self._index = 0
        self._done = False
        out.write(prefix)

    def write_record(self, data: bytes, *, final: bool = False) -> None:
        if self._done:
            raise RuntimeError("the final record was already written")
        if len(data) > self._chunk:
            raise ValueError("record larger than the chunk size")
        nonce, aad = _nonce_aad(self._hash, self._index, final)
        sealed = self._aead.encrypt(nonce, data, aad)
        self._out.write((b"\x01" if final else b"\x00") + struct.pack(">I", len(sealed)) + sealed)
        self._index += 1
        self._done = final


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    manifest: dict[str, Any]
    ephemeral: bytes
    digest: bytes  # SHA-256 of the prefix


def _read_exact(src: BinaryIO, n: int, what: str) -> bytes:
    data = src.read(n)
    if len(data) != n:
        raise DataError(
            f"the backup file is truncated ({what} is incomplete)",
            "the file was cut short (copy interrupted?): use another generation",
        )
    return data


def read_header(src: BinaryIO) -> Header:
    """Parse the cleartext prefix (no key needed: `backup list` shows it)."""
    magic = src.read(len(MAGIC))
    if magic != MAGIC:
        raise DataError("this is not a Kairan backup file (wrong magic bytes)")
    version = _read_exact(src, 1, "header")[0]
    if version != FORMAT_VERSION:
        raise DataError(
            f"backup format version {version} is not supported by this program",
            "restore with the Kairan release that wrote it, or a newer one",
        )
    ephemeral = _read_exact(src, 32, "header")
    (length,) = struct.unpack(">I", _read_exact(src, 4, "header"))
    if length > MAX_MANIFEST:
        raise DataError("the backup manifest is implausibly large: the file is damaged")
    body = _read_exact(src, length, "manifest")
    try:
        manifest = json.loads(body)
        chunk = int(manifest["chunk_size"])
    except (ValueError, KeyError, TypeError):
        raise DataError("the backup manifest is damaged") from None
    if not 0 < chunk <= MAX_CHUNK_SIZE:
        raise DataError("the backup manifest names an invalid chunk size")
    prefix = MAGIC + bytes([version]) + ephemeral + struct.pack(">I", length) + body
    return Header(manifest, ephemeral, hashlib.sha256(prefix).digest())


def open_records(src: BinaryIO, key: X25519PrivateKey) -> tuple[Header, Iterator[bytes]]:
    """Read the header and return it with an iterator of decrypted records.

    The iterator raises DataError on any tampering, truncation or trailing data; its last
    record is the final one. Nothing from a record is returned before that record authenticated.
    """
    header = read_header(src)
    own = key.public_key()
    if header.manifest.get("recipient") != fingerprint(own):
        raise DataError(
            "this backup was sealed to a different recovery key "
            f"({header.manifest.get('recipient')}; yours is {fingerprint(own)})",
            "use the recovery key whose fingerprint matches (kairanctl backup list shows it)",
        )
    try:
        peer = X25519PublicKey.from_public_bytes(header.ephemeral)
        shared = key.exchange(peer)
    except ValueError:
        raise DataError("the backup header is damaged (invalid ephemeral key)") from None
    aead = _derive(shared, header.ephemeral, _raw_public(own))
    limit = int(header.manifest["chunk_size"]) + _TAG

    def records() -> Iterator[bytes]:
        index = 0
        while True:
            head = src.read(5)
            if not head:
                raise DataError(
                    "the backup file is truncated (it ends before its final record)",
                    "the file was cut short (copy interrupted?): use another generation",
                )
            head += _read_exact(src, 5 - len(head), "a record header")
            flag, length = head[0], struct.unpack(">I", head[1:])[0]
            if flag not in (0, 1) or length > limit:
                raise DataError("the backup file is damaged or was altered (bad record header)")
            sealed = _read_exact(src, length, "a record")
            nonce, aad = _nonce_aad(header.digest, index, flag == 1)
            try:
                plain = aead.decrypt(nonce, sealed, aad)
            except InvalidTag:
                raise DataError(
                    f"the backup file was altered or damaged (record {index} fails authentication)",
                    "do not use this file; restore another generation",
                ) from None
            yield plain
            index += 1
            if flag == 1:
                if src.read(1):
                    raise DataError("the backup file has unexpected data after its final record")
                return

    return header, records()

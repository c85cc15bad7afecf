"""Backups in the standard `age` format (age-encryption.org/v1), written with pyrage.

A backup file `kairan-YYYYMMDDTHHMMSSZ.tar.age` is an age file encrypted to the municipality's
recovery key (an age X25519 recipient, `age1…`). Its plaintext is a POSIX tar archive:

    kairan-backup/README.txt     how to open the store without Kairan (Japanese and English)
    kairan-backup/manifest.json  time, schema version, SHA-256 and size of the store file
    kairan-backup/secrets.json   the escrowed secrets (db-key, signing-key, receipt-hmac-key)
    kairan-backup/kairan.db      the SQLCipher store exactly as SQLite's backup API copied it

So whoever holds the recovery identity can open a backup with Debian's `age` tool alone:

    age -d -i recovery-key.txt kairan-20261201T030000Z.tar.age | tar -x

No crypto is home-made here: age does the sealing (X25519 recipient stanza, HMAC'd header,
ChaCha20-Poly1305 STREAM payload that detects truncation and tampering), tar the packing.
Recovery keys made by earlier releases (X25519 PEM files) are the same kind of key: they are
converted to age's Bech32 text form on load, so an old `recovery.pub` keeps working.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import bech32
import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pyrage import x25519

from kairand.backup.envelope import load_recovery_key
from kairand.errors import AlreadyExistsError, ConfigError, DataError

AGE_MAGIC = b"age-encryption.org/v1\n"
FOLDER = "kairan-backup"
MEMBERS = ("README.txt", "manifest.json", "secrets.json", "kairan.db")
FORMAT = "age-tar/v2"

README = """\
Kairan バックアップ / Kairan backup
====================================

このフォルダは Kairan の暗号化バックアップ（age 形式）を復号したものです。
This folder is a decrypted Kairan backup (age format).

- kairan.db     : SQLCipher 4 で暗号化された住民データベース / the SQLCipher 4 store
- secrets.json  : データベース鍵など（"db-key" は 64 桁の16進数）/ the escrowed secrets
- manifest.json : 作成日時・スキーマ版・kairan.db の SHA-256 / time, schema, SHA-256

Kairan なしで開く方法 / opening the store without Kairan (Debian package sqlcipher):

    sqlcipher kairan.db
    sqlite> PRAGMA key = "x'<secrets.json の db-key>'";
    sqlite> SELECT count(*) FROM residents;

secrets.json と kairan.db は個人情報を開ける鍵とデータです。作業が終わったら
このフォルダを確実に消去してください（shred -u）。
secrets.json and kairan.db together open personal data: shred this folder when done.
"""


# -- keys ---------------------------------------------------------------------------------------


def _bech32(hrp: str, raw: bytes) -> str:
    data = bech32.convertbits(list(raw), 8, 5)
    assert data is not None
    return str(bech32.bech32_encode(hrp, data))


def recipient_from_x25519(key: X25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _bech32("age", raw)


def identity_from_x25519(key: X25519PrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return _bech32("age-secret-key-", raw).upper()


def generate_recovery_key(private_path: Path, public_path: Path) -> str:
    """Write a new age identity (0600, the format `age-keygen` writes) and its recipient
    (0644); return the recipient `age1…`. Refuses to overwrite either file."""
    for path in (private_path, public_path):
        if path.exists():
            raise AlreadyExistsError(
                f"{path} already exists: refusing to overwrite a recovery key",
                "choose another file name; keep every private key that still opens a backup",
            )
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
    public_path.write_text(recipient + "\n", encoding="ascii")
    public_path.chmod(0o644)
    return recipient


def load_recipient(path: Path) -> x25519.Recipient:
    """The recovery recipient in PATH: an `age1…` line, or a legacy X25519 PEM public key."""
    text = load_recipient_text(path)
    try:
        return x25519.Recipient.from_str(text)
    except pyrage.RecipientError:
        raise ConfigError(f"{path} is not an age X25519 recipient (age1…)") from None


def load_recipient_text(path: Path) -> str:
    """The recipient in PATH as age's text form `age1…` (converted from a legacy PEM)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"the recovery public key {path} does not exist",
            "create the key pair with `kairanctl backup keygen` and copy the .pub file here",
        ) from None
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise ConfigError(f"{path} is not a PEM public key") from None
        if not isinstance(key, X25519PublicKey):
            raise ConfigError(f"{path} is not an X25519 recovery public key")
        text = recipient_from_x25519(key)
    else:
        lines = [
            line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()
        ]
        lines = [line for line in lines if not line.startswith("#")]
        if len(lines) != 1:
            raise ConfigError(f"{path} must hold exactly one age recipient (age1…)")
        text = lines[0]
    return text


def load_identity(path: Path) -> x25519.Identity:
    """The recovery identity in PATH: an age identity file, or a legacy X25519 PEM key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"the recovery key {path} does not exist") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        text = identity_from_x25519(load_recovery_key(path))
    else:
        lines = [
            line.strip()
            for line in data.decode(errors="replace").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        if len(lines) != 1:
            raise DataError(
                f"{path} must hold exactly one age identity (AGE-SECRET-KEY-1…)",
                "give the private recovery key file made by `kairanctl backup keygen`",
            )
        text = lines[0]
    try:
        return x25519.Identity.from_str(text)
    except pyrage.IdentityError:
        raise DataError(
            f"{path} is not an age X25519 identity",
            "give the private recovery key file made by `kairanctl backup keygen`",
        ) from None


def is_age_file(path: Path) -> bool:
    with path.open("rb") as src:
        return src.read(len(AGE_MAGIC)) == AGE_MAGIC


# -- writing ------------------------------------------------------------------------------------


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(f"{FOLDER}/{name}")
    info.size = len(data)
    info.mode = 0o600
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def write_backup(
    out: BinaryIO,
    recipient: x25519.Recipient,
    manifest: dict[str, Any],
    secrets: dict[str, str],
    store: Path,
) -> None:
    """Stream the tar of MANIFEST, SECRETS and the STORE file through age into OUT. The
    plaintext (which holds the secrets) only ever exists in a pipe, never on disk."""
    mtime = int(dt.datetime.fromisoformat(manifest["created_at"]).timestamp())
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with (
                os.fdopen(write_fd, "wb") as pipe,
                tarfile.open(fileobj=pipe, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                _add_bytes(tar, "README.txt", README.encode(), mtime)
                _add_bytes(
                    tar,
                    "manifest.json",
                    json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=2).encode(),
                    mtime,
                )
                _add_bytes(tar, "secrets.json", json.dumps(secrets).encode(), mtime)
                info = tar.gettarinfo(str(store), arcname=f"{FOLDER}/kairan.db")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o600
                with store.open("rb") as src:
                    tar.addfile(info, src)
        except BaseException as exc:  # reported by the caller after join
            failure.append(exc)

    producer = threading.Thread(target=produce, name="backup-tar", daemon=True)
    producer.start()
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            pyrage.encrypt_io(pipe, out, [recipient])
    finally:
        producer.join()
    if failure:
        raise failure[0]


# -- reading ------------------------------------------------------------------------------------


def read_backup(
    src: BinaryIO,
    identity: x25519.Identity,
    store_sink: Callable[[IO[bytes]], None],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Decrypt SRC (an age backup) with IDENTITY; hand the store member's stream to
    STORE_SINK; return (manifest, secrets). Raises DataError for a wrong key, a damaged or
    altered file, or a tar that is not exactly the expected members."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def decrypt() -> None:
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                pyrage.decrypt_io(src, pipe, [identity])
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=decrypt, name="backup-age", daemon=True)
    worker.start()
    manifest: dict[str, Any] | None = None
    escrow: dict[str, str] | None = None
    seen: list[str] = []
    error: DataError | None = None
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            try:
                with tarfile.open(fileobj=pipe, mode="r|") as tar:
                    for member in _members(tar):
                        name = member.name.removeprefix(f"{FOLDER}/")
                        seen.append(name)
                        stream = tar.extractfile(member)
                        assert stream is not None
                        if name == "kairan.db":
                            store_sink(stream)
                        elif name == "manifest.json":
                            manifest = json.loads(stream.read())
                        elif name == "secrets.json":
                            escrow = json.loads(stream.read())
                        else:
                            stream.read()
                # Drain: age authenticates the last chunk only when everything was read.
                while pipe.read(1 << 16):
                    pass
            except (tarfile.TarError, ValueError, OSError) as exc:
                error = DataError(f"the backup's contents are damaged ({exc})")
                while pipe.read(1 << 16):
                    pass
    finally:
        worker.join()
    if failure:
        problem = failure[0]
        if isinstance(problem, pyrage.DecryptError | OSError) and not isinstance(
            problem, BrokenPipeError
        ):
            raise DataError(
                f"the backup cannot be decrypted with this recovery key, or it was altered or "
                f"cut short ({problem})",
                "check the key (kairanctl backup list shows each file's format); "
                "otherwise restore another generation",
            ) from None
        raise problem
    if error is not None:
        raise error
    if tuple(seen) != MEMBERS or not isinstance(manifest, dict) or not isinstance(escrow, dict):
        raise DataError("the backup does not hold the expected files: it is not a Kairan backup")
    return manifest, escrow


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        if not member.isfile() or not member.name.startswith(f"{FOLDER}/"):
            raise DataError(f"unexpected entry {member.name!r} in the backup")
        yield member

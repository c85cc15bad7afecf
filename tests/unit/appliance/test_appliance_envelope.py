"""The sealed backup format: round trip, and every way of damaging a file is refused (S9, K4)."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kairand.backup import envelope
from kairand.errors import AlreadyExistsError, DataError

CHUNK = 64


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    envelope.generate_recovery_key(folder / "r.key", folder / "r.pub")
    return folder / "r.key", folder / "r.pub"


def seal(records: list[bytes], pub: Path, manifest: dict | None = None) -> bytes:
    out = io.BytesIO()
    writer = envelope.SealedWriter(
        out, envelope.load_recipient(pub), {"chunk_size": CHUNK, **(manifest or {})}
    )
    for i, record in enumerate(records):
        writer.write_record(record, final=i == len(records) - 1)
    return out.getvalue()


def unseal(data: bytes, key: Path) -> list[bytes]:
    _header, records = envelope.open_records(io.BytesIO(data), envelope.load_recovery_key(key))
    return list(records)


def record_offsets(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record in a sealed file."""
    header = envelope.read_header(io.BytesIO(data))
    body = len(json.dumps(header.manifest, sort_keys=True, ensure_ascii=False).encode())
    pos = len(envelope.MAGIC) + 1 + 32 + 4 + body
    spans = []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos + 1 : pos + 5])
        spans.append((pos, pos + 5 + length))
        pos += 5 + length
    return spans


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=CHUNK), min_size=1, max_size=6))
def test_round_trip_any_records(keys: tuple[Path, Path], records: list[bytes]) -> None:
    """S9: whatever is sealed comes back byte for byte, record by record."""
    key, pub = keys
    assert unseal(seal(records, pub), key) == records


def test_manifest_is_readable_without_the_key_and_names_the_recipient(keys) -> None:
    """S9: `backup list` shows the manifest without the private key; it names the key used."""
    _key, pub = keys
    data = seal([b"x"], pub, {"schema_version": 7})
    header = envelope.read_header(io.BytesIO(data))
    assert header.manifest["schema_version"] == 7
    assert header.manifest["format"] == envelope.FORMAT_VERSION
    assert header.manifest["recipient"] == envelope.fingerprint(envelope.load_recipient(pub))
    assert b"secret-payload" not in seal([b"secret-payload"], pub)


def test_every_single_byte_flip_is_refused(keys) -> None:
    """S9: flipping any byte anywhere (magic, manifest, ephemeral key, flags, lengths, ciphertext,
    tags) makes the whole file refused with DataError."""
    key, pub = keys
    data = seal([b"a" * CHUNK, b"b" * 10, b"c" * CHUNK], pub, {"schema_version": 1})
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x01
        with pytest.raises(DataError):
            unseal(bytes(damaged), key)


def test_truncation_anywhere_is_refused(keys) -> None:
    """S9: a file cut at any byte, including exactly between records, is refused as truncated."""
    key, pub = keys
    data = seal([b"a" * CHUNK, b"b" * CHUNK, b"c" * 3], pub)
    for cut in range(len(data)):
        with pytest.raises(DataError):
            unseal(data[:cut], key)
    boundary = record_offsets(data)[1][1]
    with pytest.raises(DataError, match="truncated"):
        unseal(data[:boundary], key)


def test_reordered_dropped_and_duplicated_records_are_refused(keys) -> None:
    """S9: records cannot be swapped, dropped or repeated (index in nonce and AAD)."""
    key, pub = keys
    data = seal([b"0" * CHUNK, b"1" * CHUNK, b"2" * CHUNK, b"3"], pub)
    (a0, a1), (b0, b1), (c0, c1), (d0, d1) = record_offsets(data)
    head = data[:a0]
    rec = [data[a0:a1], data[b0:b1], data[c0:c1], data[d0:d1]]
    for order in ([1, 0, 2, 3], [0, 2, 1, 3], [0, 2, 3], [0, 1, 1, 2, 3], [0, 1, 2, 3, 3]):
        with pytest.raises(DataError):
            unseal(head + b"".join(rec[i] for i in order), key)


def test_trailing_data_and_spliced_files_are_refused(keys) -> None:
    """S9: bytes after the final record, or a record from another backup, are refused."""
    key, pub = keys
    first = seal([b"a", b"b"], pub)
    second = seal([b"a", b"b"], pub)
    with pytest.raises(DataError, match="after its final record"):
        unseal(first + b"\x00", key)
    (a0, _a1), (b0, b1) = record_offsets(first)
    (x0, x1), _ = record_offsets(second)
    with pytest.raises(DataError):
        unseal(first[:a0] + second[x0:x1] + first[b0:b1], key)


def test_wrong_key_is_refused_with_a_clear_message(keys, tmp_path: Path) -> None:
    """S9: another recovery key cannot open the backup, and the error says so."""
    _, pub = keys
    envelope.generate_recovery_key(tmp_path / "other.key", tmp_path / "other.pub")
    with pytest.raises(DataError, match="different recovery key"):
        unseal(seal([b"a"], pub), tmp_path / "other.key")


def test_not_a_backup_and_unknown_version(keys) -> None:
    """S9: foreign files and future format versions are refused with their own messages."""
    key, pub = keys
    with pytest.raises(DataError, match="not a Kairan backup"):
        unseal(b"SQLite format 3\x00" + b"\x00" * 100, key)
    data = bytearray(seal([b"a"], pub))
    data[len(envelope.MAGIC)] = 99
    with pytest.raises(DataError, match="version 99"):
        unseal(bytes(data), key)


def test_keygen_refuses_to_overwrite_and_sets_modes(tmp_path: Path) -> None:
    """S9: the private recovery key is written 0600 and never overwritten."""
    envelope.generate_recovery_key(tmp_path / "r.key", tmp_path / "r.pub")
    assert (tmp_path / "r.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(AlreadyExistsError):
        envelope.generate_recovery_key(tmp_path / "r.key", tmp_path / "x.pub")
    assert not (tmp_path / "x.pub").exists()


def test_record_larger_than_chunk_is_refused_by_the_writer(keys) -> None:
    """S9: the writer keeps its own chunk bound (readers rely on it)."""
    _, pub = keys
    writer = envelope.SealedWriter(io.BytesIO(), envelope.load_recipient(pub), {"chunk_size": 4})
    with pytest.raises(ValueError):
        writer.write_record(b"12345")

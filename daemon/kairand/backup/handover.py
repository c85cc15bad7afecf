"""The contract-end hand-over (S22): before the wipe, the municipality may receive its data,
sealed in the age format to ITS OWN key (not the backup recovery key), so only it can open it:

    age -d -i municipality-key.txt handover.tar.age | tar -x

The tar holds `handover/README.txt`, `manifest.json` (time, counts, Kairan version),
`residents.csv` (the same columns as the audited personal export: LINE user id, dates, answers;
UTF-8 with BOM for Excel) and `survey.json` (the questions, so answer codes can be read).
The plaintext only exists in memory; the file is written 0600 and atomically. Producing it is
audited (`handover.export`, with the row count and the file's SHA-256) and named in the final
deletion certificate.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pyrage

from kairand.backup import agefmt

README = """\
引継ぎデータ（Kairan）/ Kairan hand-over data

- residents.csv : 利用者ごとの登録情報（LINEユーザーID・友だち追加日時・登録日時・回答）
- survey.json   : 質問と選択肢の定義（回答のコードの意味）
- manifest.json : 作成日時・件数

個人情報を含みます。自治体の規程に従って管理し、不要になったら確実に消去してください。
This contains personal data: keep it under the municipality's rules and destroy it when done.
"""


def _member(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(f"handover/{name}")
    info.size = len(data)
    info.mode = 0o600
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2).encode()


def write_handover(
    target: Path,
    recipient_path: Path,
    *,
    residents_csv: str,
    survey: dict[str, Any],
    manifest: dict[str, Any],
    mtime: int,
) -> str:
    """Seal the hand-over to the municipality's age recipient into TARGET; its SHA-256."""
    recipient = agefmt.load_recipient(recipient_path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _member(tar, "README.txt", README.encode(), mtime)
        _member(
            tar, "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode(), mtime
        )
        _member(tar, "residents.csv", ("\ufeff" + residents_csv).encode(), mtime)
        _member(
            tar, "survey.json", json.dumps(survey, ensure_ascii=False, indent=2).encode(), mtime
        )
    sealed = pyrage.encrypt(buffer.getvalue(), [recipient])
    partial = target.with_name(f".{target.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(sealed)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    return hashlib.sha256(sealed).hexdigest()

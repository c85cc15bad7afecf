"""Deletion certificates (S11, S13): a signed document listing the deletions of a period by
reason, with counts and every receipt's digest, in printable Japanese and in JSON.

The text is rendered from the JSON payload alone, so both forms say the same thing; each is
signed on its own (see kairand.reports.signing). A resident's "prove my data was deleted" is
answered by `lookup`: the HMAC of their LINE user id finds their receipts, whose digests appear
in the certificate of the period.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kairand import __version__
from kairand.audit.chain import verify as verify_chain
from kairand.config import ContractSection
from kairand.errors import ConfigError
from kairand.reports import pdf
from kairand.reports.common import (
    REASON_LABELS,
    Period,
    date_ja,
    datetime_ja,
    iso_jst,
)
from kairand.reports.signing import fingerprint, sign_json, sign_pdf, sign_text
from kairand.retention.receipts import Receipt, subject_hmac, verify_receipt
from kairand.store import audit, receipts
from kairand.store.database import Connection
from kairand.timeutil import JST

KIND = "kairan.deletion_certificate"
TABLE_LABELS = {
    "residents": "登録者",
    "answers": "アンケートの回答",
    "inbox": "受信イベント",
    "batch_recipients": "配信先の記録",
    "test_recipients": "テスト送信先",
}


@dataclass(frozen=True)
class Gathered:
    receipts: list[Receipt]
    audit_ok: bool
    audit_entries: int
    audit_head: str
    masked: int = 0


def gather(conn: Connection, start: int, end: int) -> Gathered:
    found = receipts.between(conn, start, end)
    chain = verify_chain(audit.iter_entries(conn))
    masked = sum(
        sum(int(v) for v in e.entry.detail.values() if isinstance(v, int))
        for e in audit.iter_entries(conn)
        if e.entry.action == "retention.mask" and start * 1000 <= e.entry.at_ms < end * 1000
    )
    return Gathered(found, chain.ok, chain.entries, chain.head_hash, masked)


def _kind_of(receipt: Receipt) -> str:
    # Answer-only expiries name their question; every other receipt is a whole purge.
    return "answers" if "question" in receipt.deleted else "registration"


def receipt_rows(gathered: Gathered, public_key: Ed25519PublicKey) -> list[dict[str, Any]]:
    return [
        {
            "at": iso_jst(r.at),
            "reason": r.reason,
            "kind": _kind_of(r),
            "digest": r.digest,
            "signature_valid": verify_receipt(r, public_key),
        }
        for r in gathered.receipts
    ]


COUNT_KEYS = ("unfollow", "request", "annual_expiry", "retention", "masking", "contract_end")
COUNT_LABELS = {**REASON_LABELS, "masking": "不可逆的なマスキング（一部の文字の消去）"}
METHOD_OVERWRITE = (
    "上書き消去：データベースから削除し、削除した領域をゼロで上書き（SQLite secure_delete）、"
    "更新ログ（WAL）をチェックポイントで空にする"
)
METHOD_CRYPTO = (
    "暗号化消去：データベースの暗号鍵（AES-256）を破棄し、データベースファイルおよび"
    "更新ログ（-wal / -shm）を乱数で上書きしたうえで削除"
)
ANNEX_HEADER = ("削除日時", "理由", "対象", "削除記録のダイジェスト（SHA-256）", "署名の確認")


def render_annex(rows: list[dict[str, Any]]) -> bytes:
    """The CSV annex (別紙): one line per deletion receipt. UTF-8 with BOM and CRLF, so
    Japanese Excel opens it as it is; its SHA-256 is written into the certificate."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ANNEX_HEADER)
    for row in rows:
        writer.writerow(
            (
                row["at"],
                COUNT_LABELS[row["reason"]],
                "登録全体" if row["kind"] == "registration" else "回答の一部",
                row["digest"],
                "確認済み" if row["signature_valid"] else "確認できず",
            )
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def missing_contract(contract: ContractSection) -> None:
    missing = contract.missing()
    if missing:
        raise ConfigError(
            "the [contract] section lacks " + ", ".join(missing) + ": a certificate must name "
            "the addressee, the contractor, the 取扱責任者 and the contract",
            "fill in [contract] in kairan.toml (see docs/configuration.md)",
        )


def build_payload(
    rows: list[dict[str, Any]],
    *,
    period: Period,
    issued_at: int,
    public_key: Ed25519PublicKey,
    contract: ContractSection,
    audit_chain: dict[str, Any],
    annex: dict[str, Any],
    masked: int = 0,
    backup_lifetime_days: int = 14,
    final: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The certificate's content. ROWS are the receipts (at, reason, kind, digest,
    signature_valid); they go to the annex, referenced by ANNEX (file name, SHA-256, rows)."""
    missing_contract(contract)
    counts = Counter(r["reason"] for r in rows)
    counts["masking"] = masked
    serial = f"KC-{dt.datetime.fromtimestamp(issued_at, JST):%Y%m%d-%H%M%S}"
    if final:
        method = [METHOD_CRYPTO, METHOD_OVERWRITE]
        scope = [
            "本装置のデータベース（暗号化された SQLite ファイル）",
            "データベースの更新ログ（WAL）および一時ファイル",
            "バックアップ（本装置および複製先のすべての世代）：" + final["backups"]["summary"],
            "バックアップの復旧用秘密鍵：" + final["recovery_key"]["summary"],
        ]
        statement = (
            "受託者は、上記契約の終了に伴い、本装置に記録されたすべての個人情報を上記の方法により"
            "消去し、バックアップのすべての世代および復旧用秘密鍵の破棄を確認しました。"
            "消去した個人情報は、いかなる方法によっても復元することはできません。"
        )
    else:
        method = [METHOD_OVERWRITE]
        scope = [
            "本装置のデータベース（暗号化された SQLite ファイル）",
            "データベースの更新ログ（WAL）",
            f"バックアップ：削除後にバックアップから復元しても削除記録の再適用により復元されず、"
            f"削除前に作成されたバックアップの世代は保存期限（{backup_lifetime_days}日）の経過により"
            "本装置および複製先から消去されます",
        ]
        statement = (
            "受託者は、上記契約に基づき、対象期間中に次のとおり個人情報を削除したことを証明します。"
            "削除した個人情報は、本装置のデータベースから復元することはできません。"
        )
    return {
        "kind": KIND,
        "format": 2,
        "serial": serial,
        "issued_at": iso_jst(issued_at),
        "addressee": contract.addressee,
        "issuer": {
            "contractor": contract.contractor,
            "contractor_address": contract.contractor_address,
            "handling_manager": contract.handling_manager,
            "system": f"Kairan {__version__}",
            "key_fingerprint": fingerprint(public_key),
        },
        "contract": {
            "name": contract.name,
            "number": contract.number,
            "municipality": contract.municipality,
            "start": contract.start.isoformat() if contract.start else None,
            "end": contract.end.isoformat() if contract.end else None,
        },
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat()},
        "counts_by_reason": {key: counts.get(key, 0) for key in COUNT_KEYS},
        "total": len(rows),
        "method": method,
        "scope": scope,
        "statement": statement,
        "annex": annex,
        "receipts_with_invalid_signature": sum(1 for r in rows if not r["signature_valid"]),
        "audit_chain": audit_chain,
        "final": final,
    }


def _body(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """The certificate as (kind, text) lines, shared by the text and the PDF forms."""
    period = Period(
        dt.date.fromisoformat(payload["period"]["from"]),
        dt.date.fromisoformat(payload["period"]["to"]),
    )
    issued = dt.datetime.fromisoformat(payload["issued_at"])
    issuer, contract = payload["issuer"], payload["contract"]
    title = "個人情報削除証明書（契約終了）" if payload.get("final") else "個人情報削除証明書"
    out: list[tuple[str, str]] = [
        ("right", f"証明書番号：{payload['serial']}"),
        ("right", f"{date_ja(issued.date())}"),
        ("para", payload["addressee"]),
        ("right", f"（受託者）{issuer['contractor']}"),
    ]
    if issuer.get("contractor_address"):
        out.append(("right", issuer["contractor_address"]))
    out += [
        ("right", f"個人情報取扱責任者　{issuer['handling_manager']}"),
        ("title", title),
        ("para", payload["statement"]),
        ("heading", "1. 契約"),
        ("para", f"契約件名：{contract['name']}"),
        ("para", f"契約番号：{contract['number']}"),
    ]
    if contract.get("start"):
        end = f"{date_ja(dt.date.fromisoformat(contract['end']))}" if contract.get("end") else ""
        start = date_ja(dt.date.fromisoformat(contract["start"]))
        out.append(("para", f"契約期間：{start} 〜 {end}"))
    out += [
        ("heading", "2. 対象期間"),
        ("para", f"{period.ja()}（日本時間）"),
        ("heading", "3. 理由別の削除件数"),
    ]
    for key in COUNT_KEYS:
        unit = "文字列" if key == "masking" else "件"
        out.append(("para", f"　{COUNT_LABELS[key]}：{payload['counts_by_reason'][key]:,} {unit}"))
    out.append(("para", f"　削除記録の合計：{payload['total']:,} 件"))
    out.append(("heading", "4. 削除の方法"))
    out += [("para", f"・{m}") for m in payload["method"]]
    out.append(("heading", "5. 削除の範囲"))
    out += [("para", f"・{item}") for item in payload["scope"]]
    final = payload.get("final")
    if final:
        out.append(("heading", "6. 契約終了時の消去の記録"))
        out.append(
            (
                "para",
                f"データベースの消去日時：{final['wiped_at_ja']}（実施者：{final['wiped_by']}）",
            )
        )
        for table, count in final["personal_rows"].items():
            out.append(("para", f"　{TABLE_LABELS.get(table, table)}：{count:,} 件"))
        out.append(("para", f"データベースの暗号鍵：{final['db_key']}"))
        out.append(("para", f"バックアップの消去：{final['backups']['summary']}"))
        out.append(("para", f"復旧用秘密鍵の破棄：{final['recovery_key']['summary']}"))
        if final.get("handover"):
            out.append(("para", f"引継ぎ用データ：{final['handover']}"))
    annex = payload["annex"]
    out += [
        ("heading", "別紙（削除記録の一覧）"),
        (
            "para",
            f"削除記録 {annex['rows']:,} 件の日時・理由・ダイジェストは"
            f"別紙 {annex['file']} に記載しています。LINEユーザーIDそのものは記録しておらず、"
            "その鍵付きハッシュ（HMAC-SHA256）のみを保存しています。",
        ),
        ("small", f"別紙の SHA-256：{annex['sha256']}"),
        (
            "para",
            f"署名を確認できなかった削除記録：{payload['receipts_with_invalid_signature']} 件　／　"
            "操作ログ（監査ログ）の改ざん検知："
            + ("異常なし" if payload["audit_chain"]["intact"] else "異常あり")
            + f"（{payload['audit_chain']['entries']:,} 件）",
        ),
        ("small", f"操作ログの最終ハッシュ：{payload['audit_chain']['head_hash']}"),
        ("heading", "検証方法"),
        (
            "para",
            "本証明書は受託者が運用する装置の署名鍵（Ed25519）で署名されています。"
            "`kairanctl certificate verify <ファイル>` により、または公開鍵"
            "（`kairanctl certificate public-key` で出力）を用いて第三者が確認できます。"
            "1文字でも変更すると検証に失敗します。",
        ),
        ("small", f"公開鍵指紋：{issuer['key_fingerprint']}"),
        ("small", f"発行システム：{issuer['system']}"),
        ("right", "以上"),
    ]
    return out


def render_text(payload: dict[str, Any]) -> str:
    """The printable Japanese certificate (plain text), from the payload alone."""
    lines: list[str] = []
    for kind, text in _body(payload):
        if kind == "title":
            lines += ["", text, "=" * 24, ""]
        elif kind == "heading":
            lines += ["", text]
        elif kind == "right":
            lines.append(f"{text:>40}")
        else:
            lines.append(text)
    return "\n".join(lines).lstrip("\n") + "\n"


def render_pdf(payload: dict[str, Any]) -> bytes:
    """The printable certificate as PDF (A4, IPAex fonts), from the payload alone."""
    blocks = [pdf.Block(kind, text=text) for kind, text in _body(payload)]
    title = "個人情報削除証明書"
    return pdf.render_pdf(
        blocks, title=title, author=payload["issuer"]["contractor"], subject=payload["serial"]
    )


@dataclass(frozen=True)
class Written:
    text: Path
    json: Path
    pdf: Path
    annex: Path


def write_certificate(
    rows: list[dict[str, Any]],
    payload_for: Any,
    signing_key: Ed25519PrivateKey,
    output_dir: Path,
    stem: str,
) -> tuple[dict[str, Any], Written]:
    """Write the annex STEM-annex.csv, then STEM.txt, STEM.json and STEM.pdf (each signed).
    PAYLOAD_FOR(annex) builds the payload once the annex's hash is known."""
    output_dir.mkdir(parents=True, exist_ok=True)
    annex_bytes = render_annex(rows)
    annex_path = output_dir / f"{stem}-annex.csv"
    annex_path.write_bytes(annex_bytes)
    annex = {
        "file": annex_path.name,
        "sha256": hashlib.sha256(annex_bytes).hexdigest(),
        "rows": len(rows),
    }
    payload = payload_for(annex)
    base = output_dir / stem
    written = Written(
        base.with_suffix(".txt"), base.with_suffix(".json"), base.with_suffix(".pdf"), annex_path
    )
    written.text.write_text(sign_text(render_text(payload), signing_key), encoding="utf-8")
    written.json.write_text(sign_json(payload, signing_key), encoding="utf-8")
    written.pdf.write_bytes(sign_pdf(render_pdf(payload), signing_key))
    return payload, written


def check_annex(document: Path, payload: dict[str, Any]) -> str | None:
    """None when the annex the payload names is beside DOCUMENT with that SHA-256; otherwise
    a Japanese reason."""
    annex = payload.get("annex")
    if not annex:
        return None
    path = document.parent / annex["file"]
    try:
        data = path.read_bytes()
    except OSError:
        return f"別紙 {annex['file']} が見つかりません（証明書と同じフォルダに置いてください）"
    if hashlib.sha256(data).hexdigest() != annex["sha256"]:
        return f"別紙 {annex['file']} が変更されています（SHA-256 が一致しません）"
    return None


def lookup(
    conn: Connection, line_user_id: str, hmac_key: bytes, public_key: Ed25519PublicKey
) -> list[tuple[Receipt, bool]]:
    """Receipts for a LINE user id (recomputed HMAC; the id itself is never stored)."""
    found = receipts.for_subject(conn, subject_hmac(hmac_key, line_user_id))
    return [(r, verify_receipt(r, public_key)) for r in found]


def render_lookup(found: list[tuple[Receipt, bool]]) -> str:
    """Japanese answer to a resident's request, to print or read out."""
    if not found:
        return (
            "お申し出のLINEユーザーIDに対応する削除記録は見つかりませんでした。\n"
            "（登録が残っている場合、または本装置に登録されたことがない場合は記録がありません）\n"
        )
    lines = [f"お申し出のLINEユーザーIDについて、削除記録が {len(found)} 件あります。", ""]
    for receipt, valid in found:
        kind = "登録全体" if _kind_of(receipt) == "registration" else "回答の一部"
        lines.append(
            f"・{datetime_ja(receipt.at)}　{REASON_LABELS[receipt.reason]}（{kind}）"
            + ("" if valid else "　※署名を確認できません")
        )
        lines.append(f"  削除記録のダイジェスト：{receipt.digest}")
    lines += [
        "",
        "このダイジェストは、同じ期間の削除証明書に記載されています。",
    ]
    return "\n".join(lines) + "\n"

"""Deletion certificates (S11, S13): a signed document listing the deletions of a period by
reason, with counts and every receipt's digest, in printable Japanese and in JSON.

The text is rendered from the JSON payload alone, so both forms say the same thing; each is
signed on its own (see kairand.reports.signing). A resident's "prove my data was deleted" is
answered by `lookup`: the HMAC of their LINE user id finds their receipts, whose digests appear
in the certificate of the period.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kairand import __version__
from kairand.audit.chain import verify as verify_chain
from kairand.reports.common import (
    REASON_LABELS,
    Period,
    date_ja,
    datetime_ja,
    iso_jst,
)
from kairand.reports.signing import fingerprint, sign_json, sign_text
from kairand.retention.receipts import REASONS, Receipt, subject_hmac, verify_receipt
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


def gather(conn: Connection, start: int, end: int) -> Gathered:
    found = receipts.between(conn, start, end)
    chain = verify_chain(audit.iter_entries(conn))
    return Gathered(found, chain.ok, chain.entries, chain.head_hash)


def _kind_of(receipt: Receipt) -> str:
    # Answer-only expiries name their question; every other receipt is a whole purge.
    return "answers" if "question" in receipt.deleted else "registration"


def build_payload(
    gathered: Gathered,
    *,
    period: Period,
    issued_at: int,
    public_key: Ed25519PublicKey,
    final: dict[str, Any] | None = None,
) -> dict[str, Any]:
    counts = Counter(r.reason for r in gathered.receipts)
    listed = [
        {
            "at": iso_jst(r.at),
            "reason": r.reason,
            "kind": _kind_of(r),
            "digest": r.digest,
            "signature_valid": verify_receipt(r, public_key),
        }
        for r in gathered.receipts
    ]
    serial = f"KC-{dt.datetime.fromtimestamp(issued_at, JST):%Y%m%d-%H%M%S}"
    return {
        "kind": KIND,
        "format": 1,
        "serial": serial,
        "issued_at": iso_jst(issued_at),
        "issuer": {
            "system": f"Kairan {__version__}",
            "host": socket.gethostname(),
            "key_fingerprint": fingerprint(public_key),
        },
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat()},
        "counts_by_reason": {reason: counts.get(reason, 0) for reason in REASONS},
        "total": len(gathered.receipts),
        "receipts": listed,
        "receipts_with_invalid_signature": sum(1 for r in listed if not r["signature_valid"]),
        "audit_chain": {
            "intact": gathered.audit_ok,
            "entries": gathered.audit_entries,
            "head_hash": gathered.audit_head,
        },
        "final": final,
    }


def render_text(payload: dict[str, Any]) -> str:
    """The printable Japanese certificate, from the payload alone."""
    period = Period(
        dt.date.fromisoformat(payload["period"]["from"]),
        dt.date.fromisoformat(payload["period"]["to"]),
    )
    issued = dt.datetime.fromisoformat(payload["issued_at"])
    title = "削除証明書（契約終了）" if payload.get("final") else "削除証明書"
    lines = [
        title,
        "=" * 24,
        "",
        f"証明書番号：{payload['serial']}",
        f"発行日時　：{datetime_ja(issued.timestamp())}",
        f"対象期間　：{period.ja()}（日本時間）",
        f"発行装置　：{payload['issuer']['system']}（{payload['issuer']['host']}）",
        "",
        "本装置は、上記の対象期間に、LINE公式アカウントの利用者の個人情報（登録情報および",
        "アンケートの回答）を、以下のとおり削除したことを証明します。",
        "削除の記録（削除記録）には、LINEユーザーIDそのものは残しておらず、その鍵付きハッシュ",
        "（HMAC-SHA256）のみを保存しています。",
        "",
        "1. 理由別の削除件数",
        "",
    ]
    for reason in REASONS:
        count = payload["counts_by_reason"][reason]
        lines.append(f"   {REASON_LABELS[reason]:　<16}{count:>8,} 件")
    lines.append(f"   {'合計':　<16}{payload['total']:>8,} 件")
    lines += ["", "2. 削除記録の一覧（削除日時・理由・対象・削除記録のダイジェスト SHA-256）", ""]
    if not payload["receipts"]:
        lines.append("   対象期間に削除記録はありません。")
    for item in payload["receipts"]:
        at = dt.datetime.fromisoformat(item["at"])
        kind = "登録全体" if item["kind"] == "registration" else "回答の一部"
        mark = "" if item["signature_valid"] else "  ※署名を確認できません"
        lines.append(
            f"   {at:%Y-%m-%d %H:%M}  {REASON_LABELS[item['reason']]}  {kind}"
            f"\n     {item['digest']}{mark}"
        )
    invalid = payload["receipts_with_invalid_signature"]
    lines += [
        "",
        f"   署名を確認できなかった削除記録：{invalid} 件",
        "",
        "3. 操作ログ（監査ログ）の完全性",
        "",
        "   ハッシュチェーンの検証結果："
        + ("改ざんは検出されませんでした" if payload["audit_chain"]["intact"] else "異常あり"),
        f"   記録件数：{payload['audit_chain']['entries']:,} 件",
        f"   最終ハッシュ：{payload['audit_chain']['head_hash']}",
    ]
    final = payload.get("final")
    if final:
        lines += [
            "",
            "4. 契約終了に伴う全データの消去",
            "",
            f"   消去日時：{datetime_ja(dt.datetime.fromisoformat(final['wiped_at']).timestamp())}",
            "   方式：暗号化消去（データベースの暗号鍵を破棄し、データベースファイルおよび",
            "   ログファイル（-wal / -shm）を乱数で上書きしたうえで削除）",
            "   消去した個人情報の件数：",
        ]
        for table, count in final["personal_rows"].items():
            lines.append(f"     {TABLE_LABELS.get(table, table)}：{count:,} 件")
        lines.append(f"   暗号鍵の破棄：{final['db_key']}")
    lines += [
        "",
        "検証方法",
        "",
        "   本証明書は本装置の署名鍵（Ed25519）で署名されています。",
        "   `kairanctl certificate verify <このファイル>` により、または公開鍵",
        "   （`kairanctl certificate public-key` で出力）を用いて第三者が確認できます。",
        "   本文を1文字でも変更すると、検証に失敗します。",
        f"   公開鍵指紋：{payload['issuer']['key_fingerprint']}",
        "",
        f"以上　{date_ja(issued.date())}",
    ]
    return "\n".join(lines) + "\n"


def write_certificate(
    payload: dict[str, Any], signing_key: Ed25519PrivateKey, output_dir: Path, stem: str
) -> tuple[Path, Path]:
    """Write STEM.txt (printable, signed) and STEM.json (machine-readable, signed)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    text_path = output_dir / f"{stem}.txt"
    json_path = output_dir / f"{stem}.json"
    text_path.write_text(sign_text(render_text(payload), signing_key), encoding="utf-8")
    json_path.write_text(sign_json(payload, signing_key), encoding="utf-8")
    return text_path, json_path


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

"""Generate docs/samples/: a deletion certificate (PDF, text, JSON, CSV annex) and a handling
report (PDF, Markdown) from a synthetic training setup, so a reader can judge them.

    python -m tools.make_samples [--output docs/samples]

Everything is synthetic: a development setup (`kairanctl init --dev` with its 訓練用 contract),
made-up LINE user ids from the simulator's population generator, purges at past dates with
every reason, a masking run, an incident, a training session, a configuration change and a
backup. The signing key is the throwaway development key of that setup; its public key is
written beside the samples so `kairanctl certificate verify FILE --public-key PEM` works.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

from kairand.backup import agefmt, service
from kairand.config import load_config
from kairand.ctl import main as kairanctl
from kairand.devsetup import init_dev
from kairand.evidence.audit import AuditEntry
from kairand.keys import secrets
from kairand.retention.purge import purge_resident
from kairand.simulator.population import line_user_id
from kairand.store import audit, staff
from kairand.store.bootstrap import open_store, select_keyring
from kairand.store.database import Connection
from kairand.store.synthetic import SyntheticResident, insert_residents
from kairand.timeutil import JST

ROOT = Path(__file__).resolve().parent.parent


def _at(day: dt.date, hour: int = 10) -> int:
    return int(dt.datetime.combine(day, dt.time(hour), JST).timestamp())


def _populate(conn: Connection, today: dt.date, hmac_key: bytes, signing_key: object) -> None:
    people = [
        SyntheticResident(
            line_user_id(7, i),
            choices={"gender": ["female" if i % 2 else "male"], "area": ["honmachi"]},
            years={"birth_year": 1950 + i % 50},
        )
        for i in range(60)
    ]
    insert_residents(conn, people, _at(dt.date(2025, 4, 2)))
    reasons = ["unfollow"] * 9 + ["request"] * 3 + ["annual_expiry"] * 6 + ["retention"] * 2
    start = dt.date(2025, 5, 1)
    span = (today - start).days - 2
    for n, reason in enumerate(reasons):
        day = start + dt.timedelta(days=span * n // len(reasons))
        purge_resident(conn, line_user_id(7, n), reason, _at(day), hmac_key, signing_key)  # type: ignore[arg-type]
    for user, name, roles in (
        ("yamada", "山田 次郎", ("admin",)),
        ("suzuki", "鈴木 一子", ("author",)),
        ("kato", "加藤 三郎", ("approver", "auditor")),
    ):
        staff.upsert(
            conn, staff.StaffRecord(user, name, roles, True, True), _at(dt.date(2025, 4, 1))
        )
    audit.append(
        conn,
        AuditEntry(
            _at(today - dt.timedelta(days=3)) * 1000,
            "system:retention",
            "retention.mask",
            "ok",
            detail={"residents.display_name": 4},
        ),
    )


def generate(output: Path) -> list[Path]:
    os.environ["SUDO_USER"] = "yamada"  # the named author of the samples
    work = Path(tempfile.mkdtemp(prefix="kairan-samples-"))
    try:
        config_path = init_dev(work / "dev")
        config = load_config(config_path)
        select_keyring(config)
        today = dt.datetime.now(JST).date()
        store = open_store(config)
        try:
            store.write_sync(_populate, today, secrets.receipt_hmac_key(), secrets.signing_key())
            store.checkpoint()
        finally:
            store.close()
        yesterday = (today - dt.timedelta(days=1)).isoformat()
        ctl = ["--config", str(config_path)]
        kairanctl(
            [
                *ctl,
                "incident",
                "record",
                "--kind",
                "unauthorised_access",
                "--occurred",
                f"{yesterday}T09:30",
                "--summary",
                "職員端末へのログイン失敗が連続して記録された（不正アクセスの試み。情報の流出なし）",
                "--affected",
                "なし（ログイン前に遮断）",
                "--reported-to",
                "架空市 情報政策課",
                "--reported-at",
                f"{yesterday}T11:00",
                "--measures",
                "当該端末のパスワードを変更",
                "--prevention",
                "ログイン失敗の監視を毎日の点検項目に追加",
            ]
        )
        kairanctl(
            [
                *ctl,
                "training",
                "record",
                "--date",
                yesterday,
                "--title",
                "個人情報の取扱いに関する研修（年次）",
                "--instructor",
                "見本 花子",
                "--attendee",
                "yamada",
                "--attendee",
                "suzuki",
            ]
        )
        text = config_path.read_text(encoding="utf-8")
        config_path.write_text(
            text.replace("[backup]\n", "[backup]\nlifetime_days = 10\n"), encoding="utf-8"
        )
        config = load_config(config_path)
        key, pub = work / "recovery-key.txt", work / "recovery.pub"
        agefmt.generate_recovery_key(key, pub)
        service.create_backup(config, pub, config.backup.directory, lifetime_days=10)
        if output.exists():
            shutil.rmtree(output)
        output.mkdir(parents=True)
        first = config.contract.start.isoformat() if config.contract.start else "2025-04-01"
        kairanctl(
            [*ctl, "certificate", "--from", first, "--to", yesterday, "--output", str(output)]
        )
        kairanctl(
            [*ctl, "report", "--from", first, "--to", today.isoformat(), "--output", str(output)]
        )
        kairanctl(
            [*ctl, "certificate", "public-key", "--output", str(output / "signing-public-key.pem")]
        )
        kairanctl(
            [*ctl, "incident", "report", "1", "--output", str(output / "incident-report-1.md")]
        )
        return sorted(output.iterdir())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.make_samples")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "samples")
    args = parser.parse_args(argv)
    for path in generate(args.output):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

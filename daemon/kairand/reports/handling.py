"""Issuing the handling report (S15): the same signed Markdown and PDF for `kairanctl report`
and the auditor's `GET /v1/reports/handling`."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand import hostfacts
from kairand.config import Config
from kairand.reports import report
from kairand.reports.common import Period, datetime_ja
from kairand.reports.signing import sign_pdf, sign_text


def host_facts(config: Config) -> report.HostFacts:
    """Backup generations, the last package upgrade and pending security updates (blocking:
    runs `apt-get -s upgrade`)."""
    last = hostfacts.last_package_upgrade()
    count, note = hostfacts.pending_security_updates()
    return report.HostFacts(
        backup_files=hostfacts.backup_generations(config),
        last_os_update=datetime_ja(last.timestamp()) if last else None,
        pending_security_updates=(f"{count} 件（{note}）" if count is not None else note),
    )


def issue(
    data: report.ReportData,
    period: Period,
    now: int,
    author: str,
    config: Config,
    host: report.HostFacts,
    signing_key: Ed25519PrivateKey,
) -> tuple[str, bytes]:
    """(signed Markdown, signed PDF) of the report."""
    front, sections = report.build(data, period, now, author, config, host)
    markdown = sign_text(report.render_markdown(front, sections), signing_key)
    document = sign_pdf(report.render_pdf(front, sections, author), signing_key)
    return markdown, document

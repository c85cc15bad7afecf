"""Structured, journald-friendly log lines (`event key=value ...`) that cannot carry LINE user ids
or mail addresses.

Every record passes through `RedactingFilter`, which replaces anything shaped like a LINE user,
group or room id, and long hex/base64 secrets, before the record is formatted. Code should log
counts and internal ids only; the filter is the net under that rule.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from typing import Any

# LINE user/group/room ids: U/C/R + 32 lowercase hex digits.
LINE_ID_RE = re.compile(r"[UCR][0-9a-f]{32}")
# Mail addresses (the mail channel): anything local@domain.tld, also inside <...>.
MAIL_ADDRESS_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return MAIL_ADDRESS_RE.sub(REDACTED, LINE_ID_RE.sub(REDACTED, text))


def _render_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if text == "" or any(c in text for c in ' "=\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(str(record.msg))
        if record.args:
            record.args = (
                tuple(redact(str(a)) for a in record.args)
                if isinstance(record.args, tuple)
                else record.args
            )
        fields = getattr(record, "fields", None)
        if fields:
            # Redact strings in place but keep other types: rendering happens in the formatter.
            record.fields = {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        return True


class KeyValueFormatter(logging.Formatter):
    """`level=info logger=kairand.x event=... k=v` — one line, machine-parsable, no timestamp
    (journald adds its own) unless `with_time` is set for a plain terminal."""

    def __init__(self, with_time: bool = False) -> None:
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if self.with_time:
            parts.append(f"time={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}")
        parts += [f"level={record.levelname.lower()}", f"logger={record.name}"]
        parts.append(f"event={_render_value(redact(record.getMessage()))}")
        for key, value in (getattr(record, "fields", None) or {}).items():
            parts.append(f"{key}={redact(_render_value(value))}")
        if record.exc_info:
            exc = record.exc_info[1]
            parts.append(f"error={_render_value(redact(f'{type(exc).__name__}: {exc}'))}")
        return " ".join(parts)


class Logger:
    """Thin wrapper: `log.info("webhook.accepted", events=3)`."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, exc_info=exc_info, extra={"fields": fields})

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, False, fields)

    def error(self, event: str, exc_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, event, exc_info, fields)


def get_logger(name: str) -> Logger:
    return Logger(name)


def setup_logging(level: str = "info", stream: Any = None, with_time: bool | None = None) -> None:
    stream = stream or sys.stderr
    if with_time is None:
        with_time = not _under_journald()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter(with_time=with_time))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party loggers may print request lines with ids in URLs (e.g. /profile/{userId}).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _under_journald() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM"))

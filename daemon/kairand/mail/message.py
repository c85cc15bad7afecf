"""Mail messages with the stdlib `email` package: building outgoing mail (ISO-2022-JP or UTF-8),
reading the relay's Authentication-Results, parsing inbound mail and delivery status
notifications (RFC 3464). Pure: no network, no store."""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from typing import Literal
from urllib.parse import quote

from kairand.mail.dialogue import Inbound

Encoding = Literal["iso-2022-jp", "utf-8"]

_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_RESULT = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.IGNORECASE)


def normalize_address(raw: str) -> str | None:
    """The address in RAW (a header value), lower-cased domain, or None if it is not one."""
    _, addr = parseaddr(raw)
    addr = addr.strip()
    if not _ADDRESS.match(addr) or len(addr) > 254:
        return None
    local, _, domain = addr.rpartition("@")
    return f"{local}@{domain.lower()}"


def new_message_id(domain: str) -> str:
    return make_msgid(domain=domain)


def build(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str,
    message_id: str,
    encoding: Encoding,
    unsubscribe: tuple[str, str] | None = None,
    unsubscribe_url: str | None = None,
    in_reply_to: str | None = None,
) -> MIMEText:
    """A text/plain message in ENCODING (ISO-2022-JP: 7bit JIS in body and headers, the
    traditional encoding of Japanese carriers; UTF-8: base64). UNSUBSCRIBE is (stop address,
    stop token): the List-Unsubscribe mailto stops in one step (the token authenticates it).

    Raises ValueError when a character cannot be carried by ENCODING (e.g. a JIS X 0213-only
    kanji in ISO-2022-JP): the caller learns it before anything is sent."""
    for text in (subject, body):
        try:
            text.encode(encoding)
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"text has a character that {encoding} cannot carry: {exc.object[exc.start]!r}"
            ) from None
    msg = MIMEText(body, "plain", encoding)
    msg["Subject"] = Header(subject, encoding, header_name="Subject")  # type: ignore[assignment]
    name, addr = parseaddr(sender)
    msg["From"] = formataddr((name, addr), charset=encoding) if name else addr
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg["Auto-Submitted"] = "auto-replied" if in_reply_to else "auto-generated"
    if unsubscribe is not None:
        address, token = unsubscribe
        targets = [f"<mailto:{address}?subject={quote('stop-' + token)}>"]
        if unsubscribe_url:
            targets.append(f"<{unsubscribe_url}?t={quote(token)}>")
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["List-Unsubscribe"] = ", ".join(targets)
    return msg


def auth_passed(msg: Message, authserv_id: str) -> bool:
    """True when the relay (AUTHSERV_ID) vouches for the sender: DMARC did not fail and SPF
    or DKIM passed. Authentication-Results headers of any other authserv-id are ignored: a
    forger can write those. No trusted header at all: not authenticated."""
    results: dict[str, str] = {}
    for value in msg.get_all("Authentication-Results", []):
        text = str(value)
        server = text.split(";", 1)[0].strip().split()[0] if text.strip() else ""
        if server.lower() != authserv_id.lower():
            continue
        for method, result in _RESULT.findall(text.split(";", 1)[1] if ";" in text else ""):
            results.setdefault(method.lower(), result.lower())
    if not results:
        return False
    if results.get("dmarc") in ("fail", "permerror", "temperror"):
        return False
    return results.get("spf") == "pass" or results.get("dkim") == "pass"


def _text_of(msg: Message) -> str:
    part: Message | None = msg
    if msg.is_multipart():
        part = next(
            (
                p
                for p in msg.walk()
                if p.get_content_type() == "text/plain" and not p.is_multipart()
            ),
            None,
        )
    if part is None:
        return ""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Parsed:
    sender: str | None
    message_id: str
    inbound: Inbound


def parse_inbound(raw: bytes, authserv_id: str) -> Parsed:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    senders = getaddresses([str(v) for v in msg.get_all("From", [])])
    sender = normalize_address(senders[0][1]) if len(senders) == 1 else None
    subject = str(msg.get("Subject", ""))
    body = _text_of(msg)
    return Parsed(
        sender,
        str(msg.get("Message-ID", "")).strip(),
        Inbound(auth_passed(msg, authserv_id), subject, body),
    )


@dataclass(frozen=True)
class Bounce:
    recipients: tuple[str, ...]
    """Final-Recipient addresses whose Action is failed with a permanent (5.x.x) status."""
    original_message_id: str | None


def parse_dsn(raw: bytes) -> Bounce | None:
    """The permanent failures of a delivery status notification, or None if RAW is not one."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if msg.get_content_type() != "multipart/report":
        return None
    if str(msg.get_param("report-type", "")).lower() != "delivery-status":
        return None
    failed: list[str] = []
    original: str | None = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            # Per-message fields, then one block per recipient: email parses each as a part.
            blocks = part.get_payload()
            for block in blocks if isinstance(blocks, list) else []:
                if not isinstance(block, Message):
                    continue
                action = str(block.get("Action", "")).strip().lower()
                status = str(block.get("Status", "")).strip()
                recipient = str(block.get("Final-Recipient", "")).partition(";")[2].strip()
                if action == "failed" and status.startswith("5"):
                    address = normalize_address(recipient)
                    if address:
                        failed.append(address)
        elif ctype in ("message/rfc822", "text/rfc822-headers") and original is None:
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                original = str(inner[0].get("Message-ID", "")).strip() or None
            elif isinstance(inner, str):
                headers = email.message_from_string(inner, policy=email.policy.default)
                original = str(headers.get("Message-ID", "")).strip() or None
    return Bounce(tuple(failed), original)

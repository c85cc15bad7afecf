"""Mail-using residents for the demo: guardians who do not use LINE register by
空メール and receive alerts by mail, through a real mailbox (dovecot) and a real relay
(aiosmtpd) — kairand.simulator.mailbed.

Each guardian behaves like a person with a mail client: sends an empty mail to the published
registration address, replies to the confirmation mail (the code is in its subject), answers
each question by the number of the option they would pick (they read the option labels), and
keeps every alert that arrives. A mail is put into the registration mailbox the way the
city's mail server would store it: with the server's `Authentication-Results` (SPF and DMARC
passed). Knows nothing of the daemon: it reads the mails as text.

Counts only leave this module (status_text); addresses are the guardians' own, synthetic
(example.net), and never printed.
"""

from __future__ import annotations

import email.message
import email.policy
import logging
import queue
import random
import re
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email.message import Message
from email.utils import formatdate

from kairand.simulator.mailbed import Dovecot

log = logging.getLogger(__name__)

_CODE = re.compile(r"確認コード\s*(\d{6})")
_OPTION = re.compile(r"^(\d+)\.\s*(.+)$")


@dataclass
class Guardian:
    address: str
    likes: frozenset[str]
    """Option labels this person would choose (their area, the topics they care about)."""
    stage: str = "new"
    """new -> confirming -> asking -> registered -> stopped."""
    alerts: Counter[str] = field(default_factory=Counter)
    """Message-ID -> copies received (a second copy would be a duplicate)."""
    program: str = ""
    """A program this person joins by mail once registered (e.g. 子ども安全情報), choosing
    the school districts among their likes."""
    joined: bool = False


CHILD_SAFETY = "子ども安全情報"


def demo_guardians() -> list[Guardian]:
    """Four guardians with the areas and topics of the demo's sample deliveries; two of them
    also join 子ども安全情報 by mail, one in 朝日小学校区 (in the demo alert's districts), one
    in 港小学校区 (not)."""
    return [
        Guardian("hogosha1@example.net", frozenset({"本町", "防災・防犯", "子育て", "女性"})),
        Guardian(
            "hogosha2@example.net",
            frozenset({"駅前", "子育て", "男性", "西中学校区", "港小学校区", "保護者"}),
            program=CHILD_SAFETY,
        ),
        Guardian(
            "hogosha3@example.net",
            frozenset({"旭", "防災・防犯", "女性", "東中学校区", "朝日小学校区", "保護者"}),
            program=CHILD_SAFETY,
        ),
        Guardian("hogosha4@example.net", frozenset({"北町", "イベント"})),
    ]


def choose(body: str, likes: frozenset[str], rng: random.Random) -> str:
    """What a person replies to a question mail: the numbers of the options they like (one
    for a single choice), or a birth year."""
    options = [
        (int(m.group(1)), m.group(2).strip())
        for line in body.splitlines()
        if (m := _OPTION.match(line.strip()))
    ]
    options = [(n, label) for n, label in options if n > 0]
    if options:
        liked = [n for n, label in options if label in likes]
        if "複数" in body:
            return " ".join(str(n) for n in (liked or [options[0][0]]))
        return str(liked[0] if liked else options[0][0])
    if "月" in body and "例：1985 4" in body:
        return f"{rng.randint(1978, 1995)} {rng.randint(1, 12)}"
    return str(rng.randint(1978, 1995))


class MailTown:
    """The guardians, fed by the relay (on_message) and writing into the mailbox."""

    def __init__(
        self,
        mailbox: Dovecot,
        guardians: list[Guardian],
        *,
        registration: str,
        authserv: str,
        seed: int = 0,
    ) -> None:
        self.mailbox = mailbox
        self.guardians = {g.address: g for g in guardians}
        self.registration = registration
        self.authserv = authserv
        self.rng = random.Random(seed)
        self._inbox: queue.Queue[Message | None] = queue.Queue()
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._work, name="mail-town", daemon=True)

    # -- the relay hands every outgoing mail of the daemon here ----------------------------

    def on_message(self, msg: Message) -> None:
        self._inbox.put(msg)

    def start(self) -> None:
        """Start reading; every guardian sends their 空メール."""
        self._thread.start()
        for guardian in self.guardians.values():
            guardian.stage = "confirming"
            self._send(guardian, "", "")

    def stop_one(self, address: str) -> None:
        """The guardian at ADDRESS replies 停止 (the one-step stop)."""
        self._send(self.guardians[address], "停止", "停止")

    def close(self) -> None:
        self._inbox.put(None)
        self._thread.join(timeout=10)

    # -- counts ------------------------------------------------------------------------------

    def count(self, stage: str) -> int:
        with self._lock:
            return sum(1 for g in self.guardians.values() if g.stage == stage)

    def alerts(self) -> tuple[int, int]:
        """(alert mails received, duplicates among them)."""
        with self._lock:
            total = sum(sum(g.alerts.values()) for g in self.guardians.values())
            duplicates = sum(
                n - 1 for g in self.guardians.values() for n in g.alerts.values() if n > 1
            )
        return total, duplicates

    def settled(self) -> bool:
        """Every guardian registered, and each who wants a program has joined it."""
        with self._lock:
            return all(
                g.stage == "registered" and (g.joined or not g.program)
                for g in self.guardians.values()
            )

    def joined(self) -> int:
        with self._lock:
            return sum(1 for g in self.guardians.values() if g.joined)

    def wait(self, predicate: object, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)  # type: ignore[arg-type]

    def status_text(self) -> str:
        total, duplicates = self.alerts()
        return (
            f"メールの住民 {len(self.guardians)} 人：登録済み {self.count('registered')} 人・"
            f"配信停止 {self.count('stopped')} 人・受け取ったお知らせ {total} 通"
            f"（重複 {duplicates} 通）"
        )

    # -- behaviour -----------------------------------------------------------------------------

    def _work(self) -> None:
        while (msg := self._inbox.get()) is not None:
            try:
                self._read(msg)
            except Exception:  # a malformed mail must not stop the town
                log.exception("mail resident could not read a mail")

    def _read(self, msg: Message) -> None:
        guardian = self.guardians.get(str(msg.get("To", "")).strip())
        if guardian is None:
            return
        subject = str(msg.get("Subject", ""))
        body = _text(msg)
        reply: str | None = None
        fresh: str | None = None
        with self.changed:
            if msg.get("List-Unsubscribe"):
                guardian.alerts[str(msg.get("Message-ID", ""))] += 1
            elif (code := _CODE.search(subject)) and guardian.stage == "confirming":
                guardian.stage = "asking"
                reply = code.group(1)
            elif subject.startswith("【登録】質問") and guardian.stage == "asking":
                reply = choose(body, guardian.likes, self.rng)
            elif subject.startswith("【登録完了】"):
                guardian.stage = "registered"
                fresh = guardian.program or None  # then join the program by its name
            elif guardian.program and subject.startswith(f"【{guardian.program}】"):
                reply = self._program_reply(guardian, subject, body)
            elif subject.startswith("【配信停止】"):
                guardian.stage = "stopped"
            self.changed.notify_all()
        if reply is not None:
            self._send(guardian, f"Re: {subject}", reply, in_reply_to=str(msg["Message-ID"]))
        if fresh is not None:
            self._send(guardian, "", fresh)

    def _program_reply(self, guardian: Guardian, subject: str, body: str) -> str | None:
        """The program's dialogue (kairand.mail.programs) as a person answers it: agree, pick
        the junior-high and elementary districts they like, finish, answer the question."""
        if "利用目的" in subject:
            return "1"
        if "中学校区" in subject:
            return "0" if "選択を終える場合" in body else choose(body, guardian.likes, self.rng)
        if "小学校区" in subject or "質問" in subject:
            return choose(body, guardian.likes, self.rng)
        if "登録が完了" in subject:
            guardian.joined = True
        return None

    def _send(self, guardian: Guardian, subject: str, body: str, in_reply_to: str = "") -> None:
        """Store a mail from GUARDIAN in the registration mailbox, as the city's server does."""
        mail = email.message.EmailMessage(policy=email.policy.SMTP)
        domain = guardian.address.rsplit("@", 1)[1]
        mail["Authentication-Results"] = (
            f"{self.authserv}; spf=pass smtp.mailfrom={domain}; dmarc=pass header.from={domain}"
        )
        mail["From"] = guardian.address
        mail["To"] = self.registration
        mail["Subject"] = subject
        mail["Date"] = formatdate()
        mail["Message-ID"] = f"<{uuid.uuid4().hex}@{domain}>"
        if in_reply_to:
            mail["In-Reply-To"] = in_reply_to
        mail.set_content(body or "\n")
        self.mailbox.append(mail.as_bytes())


def _text(msg: Message) -> str:
    if isinstance(msg, email.message.EmailMessage):
        part = msg.get_body(preferencelist=("plain",))
        if part is not None:
            content = part.get_content()
            return str(content)
    payload = msg.get_payload(decode=True)
    return payload.decode(errors="replace") if isinstance(payload, bytes) else ""

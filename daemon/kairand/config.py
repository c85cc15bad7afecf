"""Daemon configuration: a TOML file validated by pydantic, with documented defaults.

Every key is documented in docs/configuration.md. Unknown keys are refused, so a typo never
silently falls back to a default. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kairand.errors import ConfigError


class Section(BaseModel):
    # Field docstrings become descriptions: docs/configuration.md is generated from them
    # (python -m kairand.configdoc), so the reference cannot drift from the code.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class DaemonSection(Section):
    """The daemon process: where the store lives, logging, threads, training mode."""

    state_dir: Path = Path("/var/lib/kairan")
    """Folder holding the encrypted store (and nothing else personal)."""
    database: str = "kairan.db"
    """File name of the SQLCipher store inside state_dir."""
    runtime_dir: Path = Path("/run/kairan")
    """Folder for sockets and other runtime files."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe level written to the journal."""
    read_threads: Annotated[int, Field(ge=1, le=16)] = 2
    """Threads serving read-only queries (the single writer has its own thread)."""
    training_mode: bool = False
    """True when the LINE endpoint is the simulator: staff screens show 訓練モード."""


class KeyringSection(Section):
    """Where secrets (store key, channel secret, access token, signing keys) come from."""

    backend: str = ""
    """Dotted class path of the keyring backend. Empty: keyring's own choice, which honours
    PYTHON_KEYRING_BACKEND (the systemd unit pins the credentials backend that way)."""
    directory: Path | None = None
    """For kairand.keys.backends.DirectoryKeyring: the folder holding one file per secret."""


class WebhookSection(Section):
    """The LINE webhook listener (reached through the outbound ssh tunnel, docs/line-side.md)."""

    socket: Path | None = Path("/run/kairan/webhook.sock")
    """Unix socket the tunnel forwards to (TLS served on it when tls_cert is set)."""
    socket_mode: int = 0o660
    """File mode of the webhook socket."""
    tcp_host: str = ""
    """Loopback TCP listener for development (empty: none)."""
    tcp_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """Port of the development TCP listener (0: none)."""
    tls_cert: Path | None = None
    """Certificate served on the webhook socket (TLS terminates on the appliance, never on the
    relay)."""
    tls_key: Path | None = None
    """Private key of tls_cert."""
    path: str = "/webhook"
    """URL path LINE posts to."""
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 1024 * 1024
    """Larger bodies are refused with 413 before they are read."""
    bot_user_id: str = ""
    """The `destination` LINE puts in every webhook body; empty accepts any (dev only)."""


class LineSection(Section):
    """The LINE Messaging API client: one base URL per LINE host."""

    api_base: str = "https://api.line.me"
    """Messaging API base URL (no trailing slash). The simulator's URL in training mode."""
    data_base: str = "https://api-data.line.me"
    """Data API base URL (rich-menu images): LINE serves those operations only there. The
    simulator's data listener in training mode."""
    request_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    """Per-request timeout for calls to LINE."""
    reply_concurrency: Annotated[int, Field(ge=1, le=4000)] = 1000
    """Replies in flight at once across residents (each resident's own replies go in order).
    At LINE's latency L seconds this carries reply_concurrency / L replies per second (LINE
    allows 2,000/s): 1,000 residents onboarding at once never wait on each other's replies
    even when LINE takes 2 s. One socket each (the systemd unit sets LimitNOFILE=8192)."""
    reply_token_lifetime_seconds: Annotated[float, Field(gt=0, le=60)] = 50.0
    """A reply is attempted only this long after its event was received (LINE's reply tokens
    live about a minute); later, or when LINE refuses it, the state is kept and only a
    message the resident must know (deliveries stopped/resumed, data deleted, registration
    completed) is pushed instead."""


class ApiSection(Section):
    """The staff API (unix socket, SO_PEERCRED identities; docs/api.md)."""

    socket: Path = Path("/run/kairan/api.sock")
    """Unix socket of the staff API (the TUI connects here; staff are identified by uid)."""
    socket_mode: int = 0o660
    """File mode of the staff API socket."""
    socket_group: str = "kairan-staff"
    """Group owning the API socket; empty leaves the daemon's group."""
    max_body_bytes: Annotated[int, Field(ge=1024, le=4 * 1024 * 1024)] = 256 * 1024
    """Largest request body the staff API reads (5 messages of 5,000 characters fit)."""
    header_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    """A new connection must send a complete request head within this time, or is closed."""
    idle_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """A kept-alive connection may wait this long for its next request (an open event
    stream is a request in progress, never cut)."""
    body_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 30.0
    """A request body must arrive completely within this time (408 otherwise)."""
    max_connections_per_peer: Annotated[int, Field(ge=1, le=1024)] = 16
    """Open connections allowed per OS user (SO_PEERCRED uid); one more gets 503."""
    audit_checkpoint_every: Annotated[int, Field(ge=1)] = 1000
    """Sign an audit checkpoint after this many new entries (S8) ..."""
    audit_checkpoint_seconds: Annotated[int, Field(ge=10)] = 3600
    """... or when the oldest entry not yet signed is this old, whichever comes first."""
    event_interval_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    """How often the event stream (/v1/events) looks for changed figures."""
    training_sockets: dict[str, Path] = {}
    """Training mode only (daemon.training_mode; ignored otherwise): one extra staff API socket
    per trainee identity (roster user name → absolute socket path). A caller on such a socket
    who is the daemon's own OS user acts as that identity, so one person can practise 作成者
    and 承認者 (four eyes) on one machine; anyone else is identified as usual."""
    quota_cache_seconds: Annotated[int, Field(ge=0)] = 300
    """How long the dashboard reuses LINE's quota figures before asking again."""


class DeliverySection(Section):
    """The sender (docs/delivery.md)."""

    multicast_rate_per_second: Annotated[float, Field(gt=0, le=2000)] = 200.0
    """Token-bucket rate of multicast requests (LINE allows 200/s per channel)."""
    pacing_guard_seconds: Annotated[float, Field(ge=0, le=0.5)] = 0.03
    """Never more than the rate's worth of multicasts in any window of 1 s plus this: requests
    that leave the daemon unevenly delayed (event-loop scheduling, the connection, LINE's
    front end reading them) by up to this much still arrive at most at the rate in every
    1-second window. Costs about guard / (1 + guard) of the throughput (3 % at 0.03)."""
    concurrency: Annotated[int, Field(ge=1, le=64)] = 40
    """Multicast requests in flight at once. To reach the rate at LINE's latency it must be at
    least rate x latency (200/s x 0.15 s = 30); 40 leaves headroom."""
    retry_base_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    """First retry delay after a 5xx / timeout (doubles each time, full jitter)."""
    retry_max_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """Longest delay between retries of one batch."""
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    """How often the sender looks for due deliveries when idle."""
    self_approval_threshold: Annotated[int, Field(ge=0)] = 0
    """Deliveries to fewer recipients than this may be approved by their author (0 = never)."""


class ConversationSection(Section):
    """The survey conversation with residents (docs/line-side.md)."""

    postback_max_age_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = 86400
    """A button tapped longer ago than this (by the event's timestamp) is refused with the
    polite "old button" reply and the current question again, never applied as an answer."""


class PrivacySection(Section):
    """Privacy switches (W4, W6, K6, S17)."""

    store_display_name: bool = False
    """Keep residents' LINE display names (W6: off unless the municipality needs them)."""
    small_cell_threshold: Annotated[int, Field(ge=1)] = 10
    """Statistics cells below this count are shown as "<N" (W4)."""
    allow_personal_export: bool = False
    """Allow `kairanctl export personal` (K6, S17). Off: only aggregate exports exist; on:
    every personal export is written to the audit log with its row count."""
    reservation_mask_after_months: Annotated[int, Field(ge=1, le=120)] = 3
    """W7: months after the booking date after which a window reservation's kana name (1st and
    3rd characters) and phone (last 2 digits) are overwritten in place by the daily retention
    run; on by default, whatever retention rules are saved (a masking rule of their own for a
    column replaces this default for that column, e.g. a full overwrite)."""


class QueueServiceSection(Section):
    """One same-day queue: a window service that hands out numbered tickets."""

    code: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
    """The service code (the same code as the reservation service, when there is one)."""
    prefix: Annotated[str, Field(pattern=r"^[A-Z]$")]
    """Ticket prefix: A → A-001, A-002, …"""
    name: Annotated[str, Field(min_length=1, max_length=20)]
    """What residents see on the button, the ticket and the board (≤ 20 characters)."""
    counters: Annotated[tuple[int, ...], Field(min_length=1)] = (1,)
    """The window numbers (番窓口) serving this queue."""
    default_service_minutes: Annotated[float, Field(gt=0, le=240)] = 10.0
    """Estimate per ticket until the day has observed service times."""


class QueueSection(Section):
    """The same-day queue: numbered tickets from LINE or the kiosk (see docs/queue.md)."""

    services: tuple[QueueServiceSection, ...] = ()
    """The queue services, each a `[[queue.services]]` table (code, prefix, name, counters,
    default_service_minutes). Empty: no same-day queue."""
    opens_at: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "08:30"
    """Japan time: the first ticket of the day can be taken from this time."""
    closes_at: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "17:15"
    """Japan time (HH:MM): no ticket after it; open tickets are closed then (waiting →
    cancelled, called → absent, serving → done)."""
    notify_when_ahead: Annotated[int, Field(ge=0, le=50)] = 3
    """Push "your turn is near" when this many tickets remain ahead (0: never)."""
    recall_limit: Annotated[int, Field(ge=0, le=10)] = 2
    """Recalls (再呼出) allowed before a ticket may be marked absent (不在)."""
    booked_grace_minutes: Annotated[int, Field(ge=0, le=120)] = 15
    """A booked resident arriving within this many minutes of their slot goes first."""
    line_basic_id: str = ""
    """The account's basic ID (e.g. @123abcde) for the kiosk QR code's LINE link."""
    max_waiting: Annotated[int, Field(ge=1, le=9999)] = 999
    """Tickets a service may have waiting at once (the number stays three digits)."""

    @model_validator(mode="after")
    def _unique(self) -> QueueSection:
        codes = [s.code for s in self.services]
        prefixes = [s.prefix for s in self.services]
        if len(set(codes)) != len(codes) or len(set(prefixes)) != len(prefixes):
            raise ValueError("queue service codes and prefixes must be unique")
        if self.opens_at >= self.closes_at:
            raise ValueError("queue.opens_at must be before queue.closes_at")
        return self

    def service(self, code: str) -> QueueServiceSection | None:
        return next((s for s in self.services if s.code == code), None)


class KioskSection(Section):
    """The kiosk's receipt printer (read by `kairan kiosk`; the daemon only validates it)."""

    printer: Literal["none", "usb", "serial", "network"] = "none"
    """How the receipt printer is attached; none: the kiosk shows the QR code on screen."""
    usb_vendor: Annotated[int, Field(ge=0, le=0xFFFF)] = 0
    """USB vendor id of the printer (printer = "usb")."""
    usb_product: Annotated[int, Field(ge=0, le=0xFFFF)] = 0
    """USB product id of the printer (printer = "usb")."""
    serial_device: str = ""
    """Serial device path, e.g. /dev/ttyUSB0 (printer = "serial")."""
    serial_baudrate: Annotated[int, Field(ge=1200, le=921600)] = 19200
    """Serial line speed (printer = "serial")."""
    network_host: str = ""
    """Host name or address of a network printer on the office LAN (printer = "network")."""
    network_port: Annotated[int, Field(ge=1, le=65535)] = 9100
    """TCP port of a network printer (9100: raw ESC/POS)."""
    training_scan_file: str = ""
    """Training mode only (daemon.training_mode): the kiosk also writes each ticket's QR link
    to this file (relative to kairan.toml), where `kairan-sim-chat`'s `scan` reads it as a
    phone would read the QR code. Empty: off; ignored outside training mode."""


DEFAULT_HOTLINES = (
    "児童相談所虐待対応ダイヤル　189（いちはやく・24時間）",
    "子ども医療電話相談　#8000（夜間・休日の子どもの急な病気）",
)


class ContractSection(Section):
    """The contract the appliance is operated under: printed on deletion certificates and the
    handling report, which a council accepts only when they name it (S11, S13, S15)."""

    addressee: str = ""
    """To whom certificates are addressed, e.g. 「奈良市長　○○ ○○ 様」."""
    municipality: str = ""
    """The municipality (委託者), e.g. 「奈良市」."""
    contractor: str = ""
    """The contractor (受託者) issuing the certificates, e.g. 「株式会社○○」."""
    contractor_address: str = ""
    """The contractor's address, printed under its name."""
    handling_manager: str = ""
    """取扱責任者: the person responsible for the handling of personal information."""
    name: str = ""
    """Contract name (契約件名)."""
    number: str = ""
    """Contract number (契約番号)."""
    start: dt.date | None = None
    """Contract start: no certificate covers a period before it."""
    end: dt.date | None = None
    """Contract end (printed; the contract-end certificate comes from the wipe steps)."""

    def missing(self) -> list[str]:
        needed = ("addressee", "contractor", "handling_manager", "name", "number", "start")
        return [key for key in needed if not getattr(self, key)]


class ConsultationSection(Section):
    contacts: Annotated[str, Field(max_length=1500)] = ""
    """G6: the municipality's contacts given to a resident who writes a consultation into the
    chat (name, phone, hours; several lines). Empty: 「市役所の担当窓口へ」."""
    hotlines: tuple[Annotated[str, Field(min_length=1, max_length=100)], ...] = Field(
        default=DEFAULT_HOTLINES,
        max_length=10,
    )
    """National hotlines listed in that reply (empty list: none)."""


class BackupSection(Section):
    directory: Path = Path("/var/backups/kairan")
    """Where `kairanctl backup create` writes the sealed generations (age format)."""
    keep: Annotated[int, Field(ge=0, le=366)] = 14
    """Generations kept (0: no count limit, only the lifetime applies)."""
    lifetime_days: Annotated[int, Field(ge=1, le=366)] = 14
    """Every generation older than this is destroyed, locally and on the mirror (S18): a
    resident deleted today is in no backup after this many days."""
    mirror: Path | None = None
    """A mounted backup target (e.g. /mnt/kairan-backup) that receives a copy of every
    generation and the deletion journal, pruned by the same rules. None: local only."""


class MediaSection(Section):
    """Images in deliveries, served to LINE through the relay like the webhook."""

    public_base_url: str = ""
    """https:// origin LINE reaches the webhook at (the relay's DNS name), no trailing slash.
    Empty: deliveries with images cannot be approved (LINE could not fetch them)."""
    path: str = "/media"
    """Path prefix of images on the webhook site (TLS socket, through the tunnel)."""
    serve_seconds: Annotated[int, Field(ge=60)] = 30 * 86400
    """How long after a delivery finished its images stay fetchable; then 404."""
    test_serve_seconds: Annotated[int, Field(ge=60)] = 86400
    """How long an image of a test send stays fetchable."""
    purge_interval_seconds: Annotated[float, Field(ge=1, le=86400)] = 3600
    """How often images past their serving period are deleted from the store (an image no
    delivery still to be sent, no series that may still send, no template and no test send
    uses, and that finished serving `serve_seconds` ago; audited as media.purge)."""
    max_upload_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 20 * 1024 * 1024
    """Largest picture staff may upload (it is re-encoded to LINE's 10 MB limit)."""


class LinksSection(Section):
    """Where links in deliveries may point (G3: a typo or a phishing link cannot go out)."""

    allowed_domains: tuple[str, ...] = ()
    """Domains (and their subdomains) links in deliveries may point to, e.g. the city's own
    site. Admins add more at runtime (PUT /v1/link-domains); both lists apply."""


class RecurringSection(Section):
    """Recurring deliveries (定期配信): the series worker and downtime."""

    grace_seconds: Annotated[int, Field(ge=0)] = 3600
    """An occurrence missed while the appliance was off is still sent this long after its
    time; later it is skipped and reported."""
    poll_seconds: Annotated[float, Field(gt=0, le=600)] = 15.0
    """How often the series worker looks for occurrences whose time has come."""
    training_fast_forward_seconds: Annotated[float, Field(ge=0, le=3600)] = 0
    """Training mode only (daemon.training_mode; refused otherwise): when > 0, the series
    worker moves the schedule clock (its own and the delivery sender's) forward to the next
    occurrence of an active series once every occurrence delivery so far has finished and
    this many real seconds have passed since the previous one, so a weekly reminder is seen
    in minutes in `make demo`. The rules and the worker are the real ones; only the clock
    jumps. 0: real time (always on an appliance)."""


class MailSection(Section):
    """E-mail as a second channel: the city's SMTP relay and registration mailbox,
    both reached outbound. Passwords come from the keyring (mail-smtp-password,
    mail-imap-password), never from this file."""

    enabled: bool = False
    """Poll the registration mailbox and send alerts by mail."""
    from_address: str = ""
    """Sender of alerts and replies, e.g. "〇〇市 防災メール <alert@city.example.jp>"."""
    registration_address: str = ""
    """The published 空メール address (also the List-Unsubscribe mailto target)."""
    authserv_id: str = ""
    """The relay's authserv-id: only its Authentication-Results (SPF/DKIM/DMARC) are trusted."""
    smtp_host: str = ""
    """The city's SMTP relay (the only SMTP host the firewall allows)."""
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 587
    """587 with STARTTLS, 465 with implicit TLS."""
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    """none is accepted only for a loopback host (tests, demo)."""
    smtp_username: str = ""
    """SMTP AUTH user; empty: no AUTH (a relay that trusts the appliance's address)."""
    imap_host: str = ""
    """The registration mailbox's IMAP server (the only IMAP host the firewall allows)."""
    imap_port: Annotated[int, Field(ge=1, le=65535)] = 993
    """993: IMAP over TLS."""
    imap_security: Literal["tls", "none"] = "tls"
    """none is accepted only for a loopback host (tests, demo)."""
    imap_username: str = ""
    """Login of the registration mailbox."""
    imap_mailbox: str = "INBOX"
    """Folder the registration mails arrive in; processed mails are deleted from it."""
    encoding: Literal["iso-2022-jp", "utf-8"] = "iso-2022-jp"
    """Charset of outgoing mail; ISO-2022-JP is what older Japanese phones expect."""
    per_minute: Annotated[int, Field(ge=1, le=100000)] = 60
    """The mail sender's own rate limit: the relay's cap on messages a minute."""
    bounce_threshold: Annotated[int, Field(ge=1, le=100)] = 3
    """Permanent failures (DSN 5.x.x) after which an address gets no more mail."""
    poll_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """How often the registration mailbox is read without IMAP IDLE; with IDLE, the longest
    time between two reads (a new mail is read as soon as the server announces it)."""
    idle: bool = True
    """Use IMAP IDLE when the server offers it; false: poll every poll_seconds."""
    send_poll_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    """How often the mail sender looks for approved deliveries' mail recipients."""
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 30.0
    """Per SMTP/IMAP command; no reply after DATA within it makes a send 'unconfirmed'."""
    message_id_domain: str = "kairan.invalid"
    """Right-hand side of the Message-IDs the appliance generates."""
    ca_file: Path | None = None
    """CA bundle for the relay's and mailbox's certificates (a city's internal CA); none: the
    system's trust store."""
    unsubscribe_url: str = ""
    """An https one-click stop page, if the city runs one; empty: mailto only."""


class Config(Section):
    daemon: DaemonSection = DaemonSection()
    keyring: KeyringSection = KeyringSection()
    webhook: WebhookSection = WebhookSection()
    line: LineSection = LineSection()
    api: ApiSection = ApiSection()
    delivery: DeliverySection = DeliverySection()
    conversation: ConversationSection = ConversationSection()
    privacy: PrivacySection = PrivacySection()
    queue: QueueSection = QueueSection()
    kiosk: KioskSection = KioskSection()
    backup: BackupSection = BackupSection()
    consultation: ConsultationSection = ConsultationSection()
    contract: ContractSection = ContractSection()
    media: MediaSection = MediaSection()
    links: LinksSection = LinksSection()
    recurring: RecurringSection = RecurringSection()
    mail: MailSection = MailSection()

    @property
    def database_path(self) -> Path:
        return self.daemon.state_dir / self.daemon.database

    @model_validator(mode="after")
    def _fast_forward_only_in_training(self) -> Config:
        if self.recurring.training_fast_forward_seconds and not self.daemon.training_mode:
            raise ValueError(
                "recurring.training_fast_forward_seconds needs daemon.training_mode = true"
            )
        return self

    @model_validator(mode="after")
    def _socket_paths_fit(self) -> Config:
        # The kernel limits a unix socket path to 107 bytes; fail here, not at bind time.
        for name, path in (
            ("webhook.socket", self.webhook.socket),
            ("api.socket", self.api.socket),
        ):
            if path is not None and len(os.fsencode(path)) > 107:
                raise ValueError(f"{name} path is longer than 107 bytes: {path}")
        return self


_PATH_KEYS = {
    ("daemon", "state_dir"),
    ("daemon", "runtime_dir"),
    ("keyring", "directory"),
    ("webhook", "socket"),
    ("webhook", "tls_cert"),
    ("webhook", "tls_key"),
    ("api", "socket"),
    ("backup", "directory"),
    ("backup", "mirror"),
    ("mail", "ca_file"),
}


def load_config(path: Path) -> Config:
    """Read and validate PATH; a ConfigError names the file and the offending key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {path} does not exist",
            "pass --config PATH, or create one with `kairanctl init --dev DIR`",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}", "fix the syntax at that line"
        ) from None
    return parse_config(raw, base_dir=path.parent.resolve(), source=str(path))


def parse_config(raw: dict[str, Any], base_dir: Path, source: str = "config") -> Config:
    for section, key in _PATH_KEYS:
        value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
        if isinstance(value, str) and value and not Path(value).is_absolute():
            raw[section][key] = str(base_dir / value)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        problem = (
            "unknown key (check the spelling against docs/configuration.md)"
            if first["type"] == "extra_forbidden"
            else first["msg"]
        )
        raise ConfigError(
            f"{source}: invalid value for `{where}`: {problem}",
            "see docs/configuration.md for every key and its default",
        ) from None

"""Daemon configuration: a TOML file validated by pydantic, with documented defaults.

Every key is documented in docs/configuration.md. Unknown keys are refused, so a typo never
silently falls back to a default. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

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


class Config(Section):
    daemon: DaemonSection = DaemonSection()
    keyring: KeyringSection = KeyringSection()
    webhook: WebhookSection = WebhookSection()
    line: LineSection = LineSection()
    api: ApiSection = ApiSection()
    delivery: DeliverySection = DeliverySection()
    conversation: ConversationSection = ConversationSection()
    privacy: PrivacySection = PrivacySection()

    @property
    def database_path(self) -> Path:
        return self.daemon.state_dir / self.daemon.database

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

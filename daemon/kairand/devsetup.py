"""`kairanctl init --dev DIR`: a complete development setup (config, keys, migrated store).

The config names its own keyring backend (a DirectoryKeyring over DIR/keys), so `kairand
--config DIR/kairan.toml` works with no environment variables set. The keys are plain files:
development and training only, never a real municipality's data.
"""

from __future__ import annotations

import getpass
import secrets as _random
import time
from pathlib import Path

from kairand.config import load_config
from kairand.errors import AlreadyExistsError
from kairand.keys import secrets
from kairand.keys.backends import SERVICE, DirectoryKeyring
from kairand.store import staff
from kairand.store.bootstrap import open_store, select_keyring
from kairand.tls import self_signed

CONFIG_NAME = "kairan.toml"

DEV_CONFIG = """\
# Kairan development / training configuration, written by `kairanctl init --dev`.
# Every key is documented in docs/configuration.md. Relative paths are relative to this file.

[daemon]
state_dir = "state"
runtime_dir = "run"
log_level = "info"
training_mode = true          # the LINE endpoint below is the simulator: screens show 訓練モード

[keyring]
# Development keyring: one 0600 file per secret. The appliance uses systemd credentials instead.
backend = "kairand.keys.backends.DirectoryKeyring"
directory = "keys"

[webhook]
socket = "run/webhook.sock"
tcp_host = "127.0.0.1"        # development only: LINE reaches a real appliance via the tunnel
tcp_port = {webhook_port}
bot_user_id = "{bot_user_id}"

[line]
api_base = "http://127.0.0.1:{simulator_port}"         # kairan-sim (Messaging API)
data_base = "http://127.0.0.1:{simulator_data_port}"   # kairan-sim (data API: rich-menu images)

[api]
socket = "run/api.sock"
socket_group = ""             # development: the socket keeps your own group

[delivery]
{four_eyes}

# Same-day queue. Training hours cover the whole day so the demo runs at any hour;
# an office sets its real hours (e.g. 08:30 to 17:15).
[queue]
opens_at = "00:00"
closes_at = "23:59"
notify_when_ahead = 3
line_basic_id = "@kairan-sim"

[[queue.services]]
code = "hoiku"                # the same code as the reservation service (booked residents first)
prefix = "A"
name = "保育所等利用申込"
counters = [1, 2, 3]

[[queue.services]]
code = "juminhyo"
prefix = "B"
name = "住民票・証明書"
counters = [4]
[backup]
directory = "backups"         # development: beside this file (the appliance: /var/backups/kairan)

[contract]
# Training data only (synthetic): the appliance's real contract goes here.
addressee = "架空市長　見本 太郎 様"
municipality = "架空市"
contractor = "株式会社サンプル情報サービス"
contractor_address = "架空県架空市中央一丁目1番1号"
handling_manager = "見本 花子"
name = "LINE公式アカウントによる情報配信システム運用業務（訓練用）"
number = "訓練-2025-001"
start = 2025-04-01
"""

RELAY_HOST = "relay.kairan-demo.test"
"""The relay's name in a development setup (.test: reserved, never resolves on the internet).
The simulator resolves it to its own blind relay into the webhook socket, as LINE's servers
reach the relay's DNS name."""

IMAGES_CONFIG = """
# Images in deliveries: LINE fetches them over https from the relay's name; the
# relay forwards TLS unopened to the webhook socket, where kairand serves them. Development:
# a self-signed certificate (tls/webhook.crt) that the simulator trusts as its CA file.
[media]
public_base_url = "https://{relay}"

[links]
allowed_domains = ["city.example.jp"]   # link buttons may point only here (and admin additions)

# Training only: the schedule clock jumps to a series' next occurrence once the previous one
# was sent and this many seconds have passed, so a weekly reminder is seen twice in minutes.
[recurring]
poll_seconds = 1
training_fast_forward_seconds = {fast_forward}
"""

FAST_FORWARD_SECONDS = 15


def enable_images(config_path: Path) -> bool:
    """Give a development setup what images need (idempotent; older setups get it too): a
    self-signed certificate for the webhook socket and the relay's name, the public base URL,
    the link allowlist and the training fast-forward. False when it was already there."""
    text = config_path.read_text(encoding="utf-8")
    if "[media]" in text:
        return False
    tls_dir = config_path.parent / "tls"
    tls_dir.mkdir(mode=0o700, exist_ok=True)
    cert, key = self_signed(RELAY_HOST, ip_addresses=("127.0.0.1",))
    (tls_dir / "webhook.crt").write_bytes(cert)
    key_file = tls_dir / "webhook.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key)
    text = text.replace(
        "[webhook]\n",
        '[webhook]\ntls_cert = "tls/webhook.crt"     # self-signed: development only\n'
        'tls_key = "tls/webhook.key"\n',
        1,
    )
    text += IMAGES_CONFIG.format(relay=RELAY_HOST, fast_forward=FAST_FORWARD_SECONDS)
    config_path.write_text(text, encoding="utf-8")
    return True


FOUR_EYES = "self_approval_threshold = 0   # four eyes: nobody approves their own delivery"
FOUR_EYES_RELAXED = (
    "# Demo only: one person may approve their own deliveries (the staff screens say so).\n"
    "self_approval_threshold = {threshold}"
)


def init_dev(
    directory: Path,
    *,
    webhook_port: int = 8470,
    simulator_port: int = 8471,
    simulator_data_port: int | None = None,
    self_approval_threshold: int = 0,
    images: bool = False,
) -> Path:
    """Create DIR/kairan.toml, DIR/keys/*, DIR/state/kairan.db; refuse to overwrite a setup.
    IMAGES: also what images in deliveries need (enable_images; `kairanctl init --dev` and
    `make demo` turn it on)."""
    directory = directory.resolve()
    config_path = directory / CONFIG_NAME
    for existing in (config_path, directory / "state" / "kairan.db"):
        if existing.exists():
            raise AlreadyExistsError(
                f"{existing} already exists: refusing to overwrite a store or its setup",
                "choose an empty folder, or delete the old one if it held only test data",
            )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for sub in ("state", "run", "keys"):
        (directory / sub).mkdir(mode=0o700, exist_ok=True)
    keyring_backend = DirectoryKeyring(directory / "keys")
    for name in secrets.ALL:
        if keyring_backend.get_password(SERVICE, name) is None:
            keyring_backend.set_password(SERVICE, name, secrets.generate(name))
    config_path.write_text(
        DEV_CONFIG.format(
            webhook_port=webhook_port,
            simulator_port=simulator_port,
            simulator_data_port=simulator_port + 1
            if simulator_data_port is None
            else simulator_data_port,
            bot_user_id="U" + _random.token_hex(16),
            four_eyes=FOUR_EYES_RELAXED.format(threshold=self_approval_threshold)
            if self_approval_threshold
            else FOUR_EYES,
        ),
        encoding="utf-8",
    )
    config_path.chmod(0o600)
    if images:
        enable_images(config_path)
    config = load_config(config_path)
    select_keyring(config)
    store = open_store(config, create=True)
    try:
        now = int(time.time())
        store.write_sync(
            staff.upsert,
            staff.StaffRecord(
                username=getpass.getuser(),
                display_name="開発者",
                roles=("admin", "author", "approver", "auditor", "counter"),
                handles_personal_data=True,
                active=True,
            ),
            now,
        )
    finally:
        store.close()
    return config_path

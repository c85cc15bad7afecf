"""What images need in a development setup: a self-signed certificate on the webhook
socket for the relay's name (and loopback), trusted by the simulator as its CA file; the
simulator fetches images through its blind relay into that socket."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509

from kairand.config import load_config
from kairand.devsetup import RELAY_HOST, enable_images, init_dev
from kairand.simulator.cli import dev_setup_config


def test_enable_images_gives_tls_public_url_and_simulator_target(short_tmp: Path) -> None:
    config_path = init_dev(short_tmp / "d")
    assert load_config(config_path).media.public_base_url == ""  # test fixtures stay plain
    assert enable_images(config_path) is True
    assert enable_images(config_path) is False  # idempotent
    config = load_config(config_path)
    assert config.media.public_base_url == f"https://{RELAY_HOST}"
    assert config.webhook.tls_cert == short_tmp / "d" / "tls" / "webhook.crt"
    assert config.links.allowed_domains == ("city.example.jp",)
    assert config.recurring.training_fast_forward_seconds > 0 and config.daemon.training_mode
    assert config.webhook.tls_key is not None
    assert stat.S_IMODE(config.webhook.tls_key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(config.webhook.tls_cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [RELAY_HOST]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    sim = dev_setup_config(config_path)
    assert sim.webhook is not None and sim.webhook.url.startswith("https://127.0.0.1:")
    assert sim.image_target is not None
    assert sim.image_target.url == f"https://{RELAY_HOST}/webhook"
    assert sim.image_target.unix_socket == str(config.webhook.socket)
    assert sim.image_target.ca_file == str(config.webhook.tls_cert)

"""A separate process that sends one alert by mail, so a test can SIGKILL it mid-send.

Usage: python -m tests.support.mail_child CONFIG RELAY_PORT DELIVERY_ID
       python -m tests.support.mail_child CONFIG RELAY_PORT deliveries
(the second form runs one step of the daemon's mail worker, kairand.mail.deliveries)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from kairand.config import load_config
from kairand.mail.deliveries import MailDeliveries
from kairand.mail.sender import Alert, MailSender
from kairand.store import mail as mail_store
from kairand.store.bootstrap import open_store, select_keyring
from tests.support.mail_settings import settings_for


async def main(config_path: Path, relay_port: int, delivery: str) -> None:
    config = load_config(config_path)
    select_keyring(config)
    store = open_store(config)
    try:
        sender = MailSender(store, settings_for(relay_port, imap_port=1), None)
        await sender.recover()
        if delivery == "deliveries":
            await MailDeliveries(store, sender).step()
            return
        delivery_id = int(delivery)
        ids = [i for i, _ in await store.read(mail_store.recipients)]
        await sender.send_alert(Alert(delivery_id, "【防災】お知らせ", "本文です。"), ids)
    finally:
        store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))

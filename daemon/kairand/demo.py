"""`make demo`: a complete training environment (訓練モード) on this machine.

One command starts, in `.demo/`:
- the LINE Platform simulator (`kairan-sim`) with a synthetic town whose residents friend the
  account over time and answer the survey through the real conversation;
- the daemon (`kairand`) pointed at the simulator;
- a few past deliveries, created, approved and sent through the staff API;
- the staff terminal (`kairan`) in the foreground. Quit it (Ctrl+Q) to stop everything.

`--headless` runs the same without the terminal and prints what happened (for CI and for a
machine without a terminal). Logs of the daemon and the simulator are in `.demo/logs/`.
Nothing here talks to the real LINE Platform or touches real residents.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime as dt
import getpass
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

from kairand import demo_mail
from kairand.api.client import ApiClient
from kairand.config import Config, load_config
from kairand.demo_messages import walkthrough, write_sample_images
from kairand.devsetup import CONFIG_NAME, enable_images, init_dev
from kairand.errors import KairanError
from kairand.glossary import STATUS_LABELS
from kairand.main import report
from kairand.programs import demo as program_demo
from kairand.reservations.model import example_service
from kairand.simulator import booking as sim_booking
from kairand.simulator.chat import control_socket_for
from kairand.simulator.mail_residents import MailTown
from kairand.simulator.phone import SOCKET_NAME as PHONE_SOCKET_NAME
from kairand.simulator.phone import PhoneClient
from kairand.store.bootstrap import open_store, select_keyring
from kairand.timeutil import JST

BANNER = (
    "訓練モード（シミュレーター）: 実在の住民には一切送信されません / training mode: simulator only"
)

# Four eyes stay on in the demo, as on a real appliance (0: nobody approves their own
# delivery). The trainee practises both sides with two trainee identities (below) and switches
# between them in the staff terminal (Ctrl+B).
DEMO_SELF_APPROVAL = 0

# Trainee identities: roster user name → (name shown, roles). Each has its own API socket in
# training mode (config api.training_sockets); the trainee's own OS account (管理者) stays too.
TRAINEES: dict[str, tuple[str, list[str]]] = {
    "kenshu_sakusei": ("研修 作成者", ["author"]),
    "kenshu_shounin": ("研修 承認者", ["approver"]),
}

# The window's devices, added the same way: the ticket kiosk (発券機, role kiosk:
# issues tickets only) and the waiting-room board (表示盤, role board: reads the board only).
DEVICES: dict[str, tuple[str, list[str]]] = {
    "kenshu_hakken": ("研修 発券機", ["kiosk"]),
    "kenshu_hyouji": ("研修 表示盤", ["board"]),
}

# Residents the trainee plays by hand in the simulated LINE chat (kairan-sim-chat --as N):
# 1 takes a number in LINE, 2 is the walk-in who scans the kiosk ticket's QR code.
PLAYERS = 2

# Where the training kiosk leaves each ticket's QR link for the simulated phone's `scan`.
KIOSK_SCAN_FILE = "run/kiosk-qr.txt"

PAST_DELIVERIES: list[dict[str, Any]] = [
    {
        "title": "防災訓練のお知らせ",
        "confidentiality": 1,
        "messages": [
            "【防災・防犯】11月30日（日）9時から、市内一斉の防災訓練を行います。"
            "サイレンが鳴りますが、訓練ですのでご安心ください。"
        ],
        "segment": {"conditions": [{"question": "topics", "any_of": ["bousai"]}]},
        "notification_disabled": False,
        "urgent": False,
    },
    {
        "title": "子育て広場（駅前・本町）",
        "confidentiality": 1,
        "messages": [
            "【子育て】12月の子育て広場は駅前地区センターで毎週水曜日10時からです。"
            "予約は不要です。お気軽にお越しください。"
        ],
        "segment": {
            "conditions": [
                {"question": "topics", "any_of": ["kosodate"]},
                {"question": "area", "any_of": ["ekimae", "honmachi"]},
            ]
        },
        "notification_disabled": False,
        "urgent": False,
    },
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def trainee_socket(config_path: Path, username: str) -> Path:
    return config_path.parent / "run" / f"{username}.sock"


def phone_socket(config_path: Path) -> Path:
    """The trainee's phone of the simulator (`make phone`, kairand.simulator.phone)."""
    return config_path.parent / "run" / PHONE_SOCKET_NAME


def ensure_setup(directory: Path) -> Path:
    config_path = directory.resolve() / CONFIG_NAME
    if not config_path.exists():
        init_dev(
            directory,
            webhook_port=_free_port(),
            simulator_port=_free_port(),
            simulator_data_port=_free_port(),
            self_approval_threshold=DEMO_SELF_APPROVAL,
        )
    enable_images(config_path)  # also for a demo folder made before images
    text = config_path.read_text(encoding="utf-8")
    sockets = ", ".join(
        f'{name} = "{trainee_socket(config_path, name)}"' for name in {**TRAINEES, **DEVICES}
    )
    line = f"training_sockets = {{ {sockets} }}\n"
    if "training_sockets" not in text:
        text = text.replace(
            "[api]\n",
            "[api]\n# Training only: the trainee acts as 作成者 or 承認者 on these sockets,"
            " and the kiosk and board use theirs.\n" + line,
            1,
        )
    elif line not in text:  # a demo folder from before the kiosk and board: add theirs
        text = re.sub(r"^training_sockets = .*\n", lambda _: line, text, count=1, flags=re.M)
    if "training_scan_file" not in text:
        text += (
            "\n[kiosk]\n# Training only: the kiosk leaves each QR link here for kairan-sim-chat's"
            f' scan.\ntraining_scan_file = "{KIOSK_SCAN_FILE}"\n'
        )
    config_path.write_text(text, encoding="utf-8")
    return config_path


async def register_trainees(config: Config) -> None:
    """Put the trainee identities on the roster through the staff API (audited like any
    roster change; the OS user of the demo is its administrator)."""
    async with api_client(config) as api:
        for username, (display_name, roles) in {**TRAINEES, **DEVICES}.items():
            response = await api.put(
                f"/v1/staff/{username}",
                {
                    "display_name": display_name,
                    "roles": roles,
                    "handles_personal_data": username in TRAINEES,
                },
            )
            if response.status != 200:
                raise RuntimeError(f"could not register the trainee {username}: {response.body}")


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM when the demo process ends, however it ends (even killed
    with SIGKILL), so nothing the demo started outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class TerminalGone(BaseException):
    """SIGHUP (the terminal was closed, the ssh session dropped) or SIGTERM: stop everything."""


def _stop_on_hangup() -> None:
    def handler(signum: int, frame: object) -> None:
        # Once only: a second signal must not interrupt the orderly stop that follows.
        for sig in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise TerminalGone(signum)

    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, handler)


class Processes:
    """The daemon and the simulator as child processes; stopped with SIGTERM, then killed.
    They also die with the demo process itself (PR_SET_PDEATHSIG)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.children.append((name, proc, log))
        return proc

    def check(self) -> None:
        for name, proc, _ in self.children:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} stopped (exit {proc.returncode}); see {self.logs / (name + '.log')}"
                )

    def stop(self) -> None:
        for _, proc, _ in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc, log in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


@contextlib.asynccontextmanager
async def api_client(config: Config, socket_path: Path | None = None) -> Any:
    connector = aiohttp.UnixConnector(path=str(socket_path or config.api.socket))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield ApiClient(session)


async def wait_for_api(config: Config, processes: Processes, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        processes.check()
        with contextlib.suppress(OSError, aiohttp.ClientError):
            async with api_client(config) as api:
                if (await api.get("/v1/me")).status == 200:
                    return
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon's staff API did not come up; see .demo/logs/kairand.log")
        await asyncio.sleep(0.3)


async def dashboard(config: Config) -> dict[str, Any]:
    async with api_client(config) as api:
        response = await api.get("/v1/dashboard")
        return response.body if response.status == 200 else {}


async def seed_past_deliveries(config: Config, marker: Path, min_registered: int = 30) -> int:
    """Once per demo folder: wait until some residents have registered, then create, submit
    and approve the sample deliveries so the history screens are not empty."""
    if await asyncio.to_thread(marker.exists):
        return 0
    deadline = time.monotonic() + 120
    while (await dashboard(config)).get("registered", 0) < min_registered:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    created = 0
    author_socket = config.api.training_sockets["kenshu_sakusei"]
    approver_socket = config.api.training_sockets["kenshu_shounin"]
    async with (
        api_client(config, author_socket) as author,
        api_client(config, approver_socket) as approver,
    ):
        for content in PAST_DELIVERIES:
            # Written by 研修 作成者, approved by 研修 承認者: four eyes, as in real use.
            response = await author.post("/v1/deliveries", content)
            if response.status != 201:
                print(f"demo: could not create a sample delivery: {response.body}", file=sys.stderr)
                continue
            delivery_id = response.body["id"]
            await author.post(f"/v1/deliveries/{delivery_id}/submit", {})
            approved = await approver.post(f"/v1/deliveries/{delivery_id}/approve", {})
            if approved.status == 200:
                created += 1
    await asyncio.to_thread(marker.write_text, f"{created}\n")
    return created


async def seed_reservations(config: Config) -> int:
    """The nursery-application window of seed 003 as a bookable service, with a few phone
    bookings, so 窓口予約 (F10) has something to show; simulated residents book in LINE."""
    async with api_client(config) as api:
        current = (await api.get("/v1/reservations/services")).body or {}
        if current.get("catalogue", {}).get("services"):
            return 0
        service = example_service().model_dump(mode="json")
        saved = await api.put("/v1/reservations/services", {"catalogue": {"services": [service]}})
        if saved.status != 200:
            print(f"demo: could not set up reservations: {saved.body}", file=sys.stderr)
            return 0
        booked = 0
        day = dt.datetime.now(JST).date()
        names = [("すいた はなこ", "06-6384-1231"), ("やまだ たろう", "090-1111-2222")]
        while booked < len(names):
            day += dt.timedelta(days=1)
            slot = f"{day.isoformat()}T10:00"
            kana, phone = names[booked]
            body = {"service": service["code"], "slot": slot, "name_kana": kana, "phone": phone}
            response = await api.post("/v1/reservations/bookings", body)
            if response.status == 201:
                booked += 1
            elif day > dt.datetime.now(JST).date() + dt.timedelta(days=30):
                break
        return booked + await seed_past_visits(api, service["code"])


PAST_VISIT_DAYS = 28
PAST_VISIT_TIMES = ("09:00", "09:30", "10:00", "10:30", "13:30", "14:00", "15:00")


async def seed_past_visits(api: ApiClient, code: str) -> int:
    """The last four weeks at the window, so 窓口予約 (F10) shows 来庁 / 不来庁 on past days and
    the statistics have visits and no-shows: the simulator's residents (their kana and phone
    from its booking model) booked by phone, and the desk marked each visit as the model says
    — 不来庁 for the residents who book and never come (kairand.simulator.booking.Plan.no_show)."""
    seeded = 0
    today = dt.datetime.now(JST).date()
    for back in range(PAST_VISIT_DAYS, 0, -1):
        day = today - dt.timedelta(days=back)
        for clock in PAST_VISIT_TIMES:
            plan = sim_booking.plan_for(seeded + 1)  # residents 1, 2, … in booking order
            body = {
                "service": code,
                "slot": f"{day.isoformat()}T{clock}",
                "name_kana": plan.kana,
                "phone": plan.phone,
            }
            response = await api.post("/v1/reservations/bookings", body)
            if response.status != 201:
                break  # a closed day (weekend, holiday): the next day
            outcome = "no_show" if plan.no_show else "attended"
            await api.post(
                f"/v1/reservations/bookings/{response.body['id']}/outcome", {"outcome": outcome}
            )
            seeded += 1
    return seeded


async def seed_queue(config: Config) -> int:
    """Walk-ins without LINE take numbers at the window (the desk issues them) and one is
    called, so 呼出 (F11) and `kairan board` show a running queue; simulated residents take
    tickets in LINE meanwhile (kairan-sim --queue-rate)."""
    issued = 0
    async with api_client(config) as api:
        for service in config.queue.services:
            for _ in range(3):
                response = await api.post("/v1/queue/tickets", {"service": service.code})
                issued += response.status == 201
        if config.queue.services:
            first = config.queue.services[0]
            await api.post("/v1/queue/call", {"service": first.code, "counter": first.counters[0]})
    return issued


async def queue_summary(config: Config) -> str:
    async with api_client(config) as api:
        board = (await api.get("/v1/queue/board")).body or {}
    calling = "、".join(f"{c['label']}→{c['counter']}番窓口" for c in board.get("calling", []))
    waiting = "、".join(f"{s['name']} {s['waiting']}人" for s in board.get("services", []))
    return f"番号札: 呼出中 {calling or 'なし'} / お待ち {waiting or 'なし'}"


_LABEL = re.compile(r"[A-Z]-\d{3,}")


class Phone:
    """The simulated LINE chat of a resident the trainee plays (kairan-sim-chat's API)."""

    def __init__(self, session: aiohttp.ClientSession, player: int) -> None:
        self.session, self.player, self.seen = session, player, 0

    async def send(self, **body: Any) -> None:
        async with self.session.post(f"http://sim/players/{self.player}/send", json=body) as r:
            if r.status != 200:
                raise RuntimeError(f"the simulated chat refused {body}: {await r.text()}")

    async def wait_for(self, needle: str, within: float = 30) -> str:
        """The first new message containing NEEDLE (earlier new ones are read and skipped)."""
        deadline = time.monotonic() + within
        while True:
            url = f"http://sim/players/{self.player}/messages"
            async with self.session.get(url, params={"since": str(self.seen)}) as r:
                body = await r.json()
            for n, item in enumerate(body["messages"]):
                if needle in item["text"]:
                    self.seen += n + 1
                    return str(item["text"])
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulated resident {self.player} never got 「{needle}」")
            await asyncio.sleep(0.2)


def _first_line(text: str) -> str:
    return text.replace("\n", " ")


async def queue_walkthrough(config: Config, control_socket: Path) -> bool:
    """What a newcomer does at the window, run by the headless demo: resident 1 takes
    a number in the LINE chat, the kiosk issues a paper ticket, resident 2 scans its QR code
    and checks their position, the desk calls both while the board shows each call."""
    sockets = config.api.training_sockets
    code = config.queue.services[0].code
    # The last window of the service: the seeded call waits at the first one.
    counter = config.queue.services[0].counters[-1]
    connector = aiohttp.UnixConnector(path=str(control_socket))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        api_client(config) as desk,
        api_client(config, sockets["kenshu_hakken"]) as kiosk,
        api_client(config, sockets["kenshu_hyouji"]) as board,
    ):
        deadline = time.monotonic() + 60
        while True:  # the simulator may still be starting
            with contextlib.suppress(OSError, aiohttp.ClientError):
                async with session.get("http://sim/players") as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError("the simulated chat did not come up; see .demo/logs")
            await asyncio.sleep(0.3)
        line_user, walk_in = Phone(session, 1), Phone(session, 2)
        await line_user.send(text="番号札を取る")
        await line_user.wait_for("どちらの窓口")
        await line_user.send(tap=1)
        taken = await line_user.wait_for("番号札をお取りしました")
        print(f"LINE（住民1）：{_first_line(taken)}", flush=True)
        issued = await kiosk.post("/v1/queue/tickets", {"service": code})
        if issued.status != 201 or not issued.body.get("qr_url"):
            raise RuntimeError(f"the kiosk could not issue a ticket: {issued.body}")
        print(f"発券機：番号札 {issued.body['label']} を発行（QRコード付き）", flush=True)
        await walk_in.send(scan=issued.body["qr_url"])
        linked = await walk_in.wait_for("連携しました")
        print(f"LINE（住民2）：{_first_line(linked)}", flush=True)
        await walk_in.send(text="順番を確認")
        # The answer starts with the number and the service (a "near" push may come first).
        position = await walk_in.wait_for(f"{issued.body['label']}（")
        print(f"LINE（住民2）順番を確認：{_first_line(position)}", flush=True)
        mine = {
            _LABEL.findall(taken)[0]: line_user,
            issued.body["label"]: walk_in,
        }
        for _ in range(200):
            if not mine:
                return True
            called = await desk.post("/v1/queue/call", {"service": code, "counter": counter})
            if called.status != 200:
                raise RuntimeError(f"the desk could not call: {called.body}")
            label, ticket_id = called.body["label"], called.body["id"]
            phone = mine.pop(label, None)
            if phone is not None:
                pushed = await phone.wait_for(f"{label}番の方、{counter}番窓口へお越しください")
                shown = (await board.get("/v1/queue/board")).body or {}
                calling = "、".join(
                    f"{c['label']}→{c['counter']}番窓口" for c in shown.get("calling", [])
                )
                print(f"窓口（F11 呼出）：{label} を呼び出しました", flush=True)
                print(f"LINE（住民{phone.player}）のお知らせ：{pushed}", flush=True)
                print(f"表示盤：呼出中 {calling}", flush=True)
            for action in ("serve", "done"):
                await desk.post(f"/v1/queue/tickets/{ticket_id}/action", {"action": action})
    return not mine


def window_instructions(config_path: Path) -> str:
    """How to open the window's devices beside the staff terminal (see README)."""
    sockets = load_config(config_path).api.training_sockets
    here = Path.cwd()

    def rel(path: Path) -> str:
        return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)

    bin_dir = rel(Path(sys.executable).parent)
    return (
        "同日受付（番号札）の訓練：別の端末でそれぞれ実行してください。\n"
        f"  発券機:   {bin_dir}/kairan kiosk --config {rel(config_path)}"
        f" --socket {rel(sockets['kenshu_hakken'])}\n"
        f"  表示盤:   {bin_dir}/kairan board --socket {rel(sockets['kenshu_hyouji'])}\n"
        f"  LINE:     {bin_dir}/python -m kairand.simulator.chat --dev-config {rel(config_path)}"
        " --as 1   （--as 2 は発券機のQRコードを読み取る住民）\n"
        "  呼出:     この画面で Ctrl+B（管理者）→ F11"
    )


DEMO_ALERT = {
    "when": "本日 午後3時30分ごろ",
    "place": "朝日町の公園付近",
    "what": "下校中の児童が、見知らぬ男から声をかけられました（訓練）。",
    "advice": "登下校時は複数で行動しましょう。",
}


async def send_demo_alert(config: Config) -> None:
    """What a newcomer does on the 緊急配信 screen: the kindergarten's 不審者情報 to its two
    districts, sent at once with no second person (headless mode only)."""
    async with api_client(config) as api:
        programs = (await api.get("/v1/programs")).body or {}
        for program in programs.get("items", []):
            print(f"配信サービス「{program['name']}」登録 {program['registered']} 人", flush=True)
        templates = (await api.get("/v1/alert-templates")).body or {}
        approved = [t for t in templates.get("items", []) if t["status"] == "approved"]
        if not approved:
            return
        body = {
            "template_id": approved[0]["id"],
            "institution": "tanpopo",
            "districts": ["asahi", "hikari"],
            "values": DEMO_ALERT,
        }
        answer = await api.post("/v1/alerts", body)
        if answer.status != 201:
            print(f"demo: the alert was refused: {answer.body}", file=sys.stderr)
            return
        print(
            f"緊急配信 #{answer.body['delivery_id']} を送信しました（承認者の操作なし）", flush=True
        )


async def mail_summary(config: Config, town: MailTown) -> None:
    """Wait until the deliveries' mail is settled, then one guardian stops (停止); print the
    guardians' counts (no address)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with api_client(config) as api:
            items = ((await api.get("/v1/deliveries")).body or {}).get("items", [])
        tallies = [i["mail"] for i in items if i.get("mail")]
        settled = sum(t["sent"] + t["failed"] + t["unconfirmed"] for t in tallies)
        if settled == sum(t["recipients"] for t in tallies):
            received = sum(t["sent"] for t in tallies)

            def arrived(expected: int = received) -> bool:
                return town.alerts()[0] >= expected

            if await asyncio.to_thread(town.wait, arrived, 10):
                break
        await asyncio.sleep(0.5)
    first = next(iter(town.guardians))
    await asyncio.to_thread(town.stop_one, first)
    await asyncio.to_thread(town.wait, lambda: town.count("stopped") >= 1, 15)
    print(await asyncio.to_thread(town.status_text), flush=True)


async def rich_walkthrough(config: Config) -> bool:
    """A card with an image to a segment, and a weekly reminder seen twice
    (kairand.demo_messages), by 研修 作成者 and 研修 承認者."""
    sockets = config.api.training_sockets
    async with (
        api_client(config, sockets["kenshu_sakusei"]) as author,
        api_client(config, sockets["kenshu_shounin"]) as approver,
    ):
        try:
            return await walkthrough(author, approver)
        except RuntimeError as exc:
            print(f"demo: the rich-message walkthrough failed: {exc}", file=sys.stderr)
            return False


PRACTICE_DRAFT: dict[str, Any] = {
    "title": "テスト送信の練習",
    "confidentiality": 1,
    "messages": ["【練習】年末年始の窓口のご案内です。テスト送信の確認用です。"],
    "segment": {"all_registered": True},
    "notification_disabled": False,
    "urgent": False,
}


async def practise_test_send(config: Config, config_path: Path, within: float = 60) -> str:
    """What a newcomer does for テスト送信 (headless mode): as 研修 作成者, get a code, send it
    from the trainee's phone (`make phone`), and test-send a draft that the phone then shows."""
    phone = PhoneClient(phone_socket(config_path))
    deadline = time.monotonic() + within
    async with api_client(config, config.api.training_sockets["kenshu_sakusei"]) as author:
        code = (await author.post("/v1/test-recipients/code", {})).body["code"]
        await phone.send(code)
        while (await author.get("/v1/test-recipients")).body.get("count", 0) < 1:
            if time.monotonic() > deadline:
                return "テスト送信：研修用スマートフォンを登録できませんでした"
            await asyncio.sleep(0.2)
        draft = await author.post("/v1/deliveries", PRACTICE_DRAFT)
        if draft.status != 201:
            return f"テスト送信：下書きを作成できませんでした（{draft.body}）"
        sent = await author.post(f"/v1/deliveries/{draft.body['id']}/test-send", {})
        if sent.status != 200:
            return f"テスト送信：送信できませんでした（{sent.body}）"
    while True:
        lines = await phone.lines_after(0)
        got = [x["text"] for x in lines if x["direction"] == "in"]
        if any(PRACTICE_DRAFT["messages"][0] in text for text in got):
            notice = next(text for text in got if text.startswith("【テスト送信】"))
            return f"テスト送信：研修用スマートフォンに届きました（{notice.splitlines()[0]}）"
        if time.monotonic() > deadline:
            return "テスト送信：研修用スマートフォンに届きませんでした"
        await asyncio.sleep(0.2)


async def headless(
    config: Config,
    config_path: Path,
    processes: Processes,
    duration: float,
    marker: Path,
    town: MailTown | None = None,
) -> int:
    started = time.monotonic()
    reservations = await seed_reservations(config)
    print(f"demo: window reservations ready ({reservations} phone bookings)", flush=True)
    print(f"demo: same-day queue running ({await seed_queue(config)} tickets at the window)")
    walked = await queue_walkthrough(config, control_socket_for(config_path))
    print(f"demo: window walkthrough {'ok' if walked else 'failed'}", flush=True)
    if town is not None:
        # The sample deliveries are frozen when approved: let the mail guardians finish their
        # registration first, so the newcomer sees mail among the recipients.
        # Two of them also join 子ども安全情報 by mail (districts by number).
        await asyncio.to_thread(town.wait, town.settled, 120)
    seeded = asyncio.create_task(seed_past_deliveries(config, marker))
    while time.monotonic() - started < duration:
        await asyncio.sleep(5)
        processes.check()
        figures = await dashboard(config)
        print(
            f"{time.monotonic() - started:4.0f}s 友だち {figures.get('friends', 0)}"
            f" / 登録者 {figures.get('registered', 0)}",
            flush=True,
        )
    await seeded
    await send_demo_alert(config)
    rich_ok = await rich_walkthrough(config)
    practised = await practise_test_send(config, config_path)
    print(practised, flush=True)
    await asyncio.sleep(3)  # let the sender finish the sample deliveries
    async with api_client(config) as api:
        page = (await api.get("/v1/deliveries")).body or {}
    items = page.get("items", [])
    if town is not None:
        await mail_summary(config, town)
        async with api_client(config) as api:
            items = ((await api.get("/v1/deliveries")).body or {}).get("items", [])
    for item in items:
        mail = f"、うちメール {item['mail']['sent']} 人" if item.get("mail") else ""
        print(
            f"配信番号 {item.get('id')} 「{item.get('title')}」："
            f"{STATUS_LABELS.get(str(item.get('status')), item.get('status'))}"
            f"（配信対象 {item.get('recipient_count')} 人、送信済み {item.get('sent_count')} 人"
            f"{mail}）",
            flush=True,
        )
    print(await queue_summary(config), flush=True)
    figures = await dashboard(config)
    sent = sum(int(i.get("sent_count") or 0) for i in items)
    practised_ok = "届きました" in practised
    ok = figures.get("registered", 0) > 0 and sent > 0 and rich_ok and walked and practised_ok
    if ok:
        verdict = "デモ：正常に動作しました（demo: ok）"
    elif not (figures.get("registered", 0) > 0 and sent > 0):
        verdict = "デモ：配信されませんでした（demo: nothing was delivered）"
    elif not rich_ok:
        verdict = (
            "デモ：画像つきカードか定期配信が届きませんでした（demo: rich walkthrough failed）"
        )
    elif not walked:
        verdict = "デモ：窓口の番号札の流れが終わりませんでした（demo: window walkthrough failed）"
    else:
        verdict = "デモ：テスト送信が届きませんでした（demo: test send failed）"
    print(verdict, flush=True)
    return 0 if ok else 1


def install_child_safety(config: Config) -> None:
    """The 子ども安全情報 program with an approved template, before the daemon
    starts: the person running the demo is the kindergarten's head and can send an alert."""
    select_keyring(config)
    store = open_store(config)
    try:
        if asyncio.run(program_demo.install(store, getpass.getuser())):
            print("demo: 子ども安全情報 (F12 緊急配信) is set up", flush=True)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kairan-demo", description=BANNER)
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="demo folder")
    parser.add_argument("--population", type=int, default=3000, help="synthetic residents")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--headless", action="store_true", help="no staff terminal: print what happens"
    )
    parser.add_argument("--duration", type=float, default=40, help="seconds (headless)")
    args = parser.parse_args(argv)
    print(BANNER, flush=True)
    try:
        config_path = ensure_setup(args.dir)
        if not demo_mail.add_to_config(config_path):
            print("demo: dovecot is not installed: the mail channel is left out", flush=True)
        config = load_config(config_path)
    except KairanError as exc:
        return report("kairan-demo", exc)
    logs = config_path.parent / "logs"
    logs.mkdir(exist_ok=True)
    install_child_safety(config)
    if config.mail.enabled:
        demo_mail.provision(config)
    mail_bed = contextlib.ExitStack()
    marker = config_path.parent / "state" / "demo-seeded"
    processes = Processes(logs)
    python = sys.executable
    _stop_on_hangup()
    try:
        town = demo_mail.start(config, config_path.parent, mail_bed, args.seed)
        if town is not None:
            print("demo: mail guardians send their 空メール (dovecot + local relay)", flush=True)
        processes.start("kairand", [python, "-m", "kairand", "--config", str(config_path)])
        processes.start(
            "simulator",
            [
                python, "-m", "kairand.simulator.cli",
                "--dev-config", str(config_path),
                "--population", str(args.population),
                "--seed", str(args.seed),
                "--follow", "150",
                "--follow-rate", "2",
                "--think-time", "0.3", "1.5",
                "--booking-rate", "0.2",
                "--queue-rate", "0.1",
                "--players", str(PLAYERS),
                "--report-every", "10",
                "--school-districts", program_demo.simulator_districts(),
                "--phone-socket", str(phone_socket(config_path)),
                # The simulated LINE remembers its friends and the month's count across runs,
                # as LINE does (the daemon's store remembers them too).
                "--state", str(config_path.parent / "state" / "simulator.json"),
            ],
        )  # fmt: skip
        asyncio.run(wait_for_api(config, processes))
        asyncio.run(register_trainees(config))
        print(f"demo: daemon and simulator are running (logs in {logs})", flush=True)
        print(
            "demo: 研修用スマートフォン（テスト送信の受け取り）は別の端末で make phone",
            flush=True,
        )
        if args.headless or not sys.stdin.isatty():
            return asyncio.run(
                headless(config, config_path, processes, args.duration, marker, town)
            )
        asyncio.run(seed_reservations(config))
        asyncio.run(seed_queue(config))
        print(window_instructions(config_path), flush=True)
        seeding = threading.Thread(
            target=lambda: asyncio.run(seed_past_deliveries(config, marker)), daemon=True
        )
        seeding.start()
        # The trainee starts as 研修 作成者 and switches with Ctrl+B to 研修 承認者 and to their
        # own account (管理者: アンケート設定, 職員, 監査ログ).
        sockets = config.api.training_sockets
        # The image picker lists this folder (a sample poster in it) instead of ~/kairan-images.
        images = write_sample_images(config_path.parent / "images").parent
        tui = subprocess.run(
            [
                python, "-m", "kairan_tui.main",
                "--socket", str(sockets["kenshu_sakusei"]),
                "--identity", f"研修 作成者={sockets['kenshu_sakusei']}",
                "--identity", f"研修 承認者={sockets['kenshu_shounin']}",
                "--identity", f"管理者（ご自身）={config.api.socket}",
                "--export-dir", str(config_path.parent / "exports"),
            ],
            env={**os.environ, "KAIRAN_IMAGES": str(images)},
            check=False,
        )  # fmt: skip
        return tui.returncode
    except (RuntimeError, OSError) as exc:
        print(f"kairan-demo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except TerminalGone as gone:
        return 128 + int(gone.args[0])
    finally:
        processes.stop()
        mail_bed.close()


if __name__ == "__main__":
    sys.exit(main())

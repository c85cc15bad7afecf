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
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

from kairand.api.client import ApiClient
from kairand.config import Config, load_config
from kairand.devsetup import CONFIG_NAME, init_dev
from kairand.errors import KairanError
from kairand.glossary import STATUS_LABELS
from kairand.main import report
from kairand.programs import demo as program_demo
from kairand.reservations.model import example_service
from kairand.simulator import booking as sim_booking
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
    text = config_path.read_text(encoding="utf-8")
    if "training_sockets" not in text:
        sockets = ", ".join(f'{name} = "{trainee_socket(config_path, name)}"' for name in TRAINEES)
        text = text.replace(
            "[api]\n",
            "[api]\n# Training only: the trainee acts as 作成者 or 承認者 on these sockets.\n"
            f"training_sockets = {{ {sockets} }}\n",
            1,
        )
        config_path.write_text(text, encoding="utf-8")
    return config_path


async def register_trainees(config: Config) -> None:
    """Put the trainee identities on the roster through the staff API (audited like any
    roster change; the OS user of the demo is its administrator)."""
    async with api_client(config) as api:
        for username, (display_name, roles) in TRAINEES.items():
            response = await api.put(
                f"/v1/staff/{username}",
                {"display_name": display_name, "roles": roles, "handles_personal_data": True},
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


async def headless(config: Config, processes: Processes, duration: float, marker: Path) -> int:
    started = time.monotonic()
    reservations = await seed_reservations(config)
    print(f"demo: window reservations ready ({reservations} phone bookings)", flush=True)
    print(f"demo: same-day queue running ({await seed_queue(config)} tickets at the window)")
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
    await asyncio.sleep(3)  # let the sender finish the sample deliveries
    async with api_client(config) as api:
        page = (await api.get("/v1/deliveries")).body or {}
    items = page.get("items", [])
    for item in items:
        print(
            f"配信番号 {item.get('id')} 「{item.get('title')}」："
            f"{STATUS_LABELS.get(str(item.get('status')), item.get('status'))}"
            f"（配信対象 {item.get('recipient_count')} 人、送信済み {item.get('sent_count')} 人）",
            flush=True,
        )
    print(await queue_summary(config), flush=True)
    figures = await dashboard(config)
    sent = sum(int(i.get("sent_count") or 0) for i in items)
    ok = figures.get("registered", 0) > 0 and sent > 0
    print(
        "デモ：正常に動作しました（demo: ok）"
        if ok
        else "デモ：配信されませんでした（demo: nothing was delivered）",
        flush=True,
    )
    return 0 if ok else 1


def install_child_safety(config: Config) -> None:
    """The 子ども安全情報 program with an approved template (issue 16), before the daemon
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
        config = load_config(config_path)
    except KairanError as exc:
        return report("kairan-demo", exc)
    logs = config_path.parent / "logs"
    logs.mkdir(exist_ok=True)
    install_child_safety(config)
    marker = config_path.parent / "state" / "demo-seeded"
    processes = Processes(logs)
    python = sys.executable
    _stop_on_hangup()
    try:
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
                "--report-every", "10",
                "--school-districts", program_demo.simulator_districts(),
            ],
        )  # fmt: skip
        asyncio.run(wait_for_api(config, processes))
        asyncio.run(register_trainees(config))
        print(f"demo: daemon and simulator are running (logs in {logs})", flush=True)
        if args.headless or not sys.stdin.isatty():
            return asyncio.run(headless(config, processes, args.duration, marker))
        asyncio.run(seed_reservations(config))
        asyncio.run(seed_queue(config))
        seeding = threading.Thread(
            target=lambda: asyncio.run(seed_past_deliveries(config, marker)), daemon=True
        )
        seeding.start()
        # The trainee starts as 研修 作成者 and switches with Ctrl+B to 研修 承認者 and to their
        # own account (管理者: アンケート設定, 職員, 監査ログ).
        sockets = config.api.training_sockets
        tui = subprocess.run(
            [
                python, "-m", "kairan_tui.main",
                "--socket", str(sockets["kenshu_sakusei"]),
                "--identity", f"研修 作成者={sockets['kenshu_sakusei']}",
                "--identity", f"研修 承認者={sockets['kenshu_shounin']}",
                "--identity", f"管理者（ご自身）={config.api.socket}",
            ],
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


if __name__ == "__main__":
    sys.exit(main())

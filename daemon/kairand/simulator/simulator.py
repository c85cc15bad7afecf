"""`Simulator`: the LINE Platform (Messaging API server + webhook sender) and a population of
synthetic residents who use the conversation, in one object with `start()`/`stop()`."""

from __future__ import annotations

import asyncio
import gc
import json
import random
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from kairand.logs import get_logger
from kairand.simulator import behaviour, booking, queue_visitor
from kairand.simulator.api import Platform, make_api_app, make_data_app
from kairand.simulator.clock import Clock, RealClock
from kairand.simulator.faults import FaultProfile
from kairand.simulator.ledger import Ledger, Receipt
from kairand.simulator.media import ImageFetcher
from kairand.simulator.phone import DISPLAY_NAME as PHONE_NAME
from kairand.simulator.phone import TraineePhone, phone_user_id
from kairand.simulator.phone import serve as serve_phone
from kairand.simulator.population import Municipality, Population, Resident, bot_user_id
from kairand.simulator.spec import messaging_spec
from kairand.simulator.webhook import EventFactory, WebhookSender, WebhookTarget

log = get_logger(__name__)

BANNER = "訓練モード（シミュレーター）: 実在の住民には送信されません"


@dataclass
class SimulatorConfig:
    """Everything a simulated LINE channel needs. Defaults give a quiet, fault-free channel."""

    seed: int = 0
    population: int = 100
    municipality: Municipality = field(default_factory=Municipality)
    channel_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    access_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    bot_user_id: str | None = None  # the webhook `destination`; derived from the seed if None
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port; see Simulator.api_url
    data_port: int = 0  # the api-data listener (rich-menu images); see Simulator.data_url
    webhook: WebhookTarget | None = None  # None: events are kept in Simulator.outbox
    faults: FaultProfile = field(default_factory=FaultProfile)
    rates: dict[str, float] | None = None  # endpoint group -> requests/s (LINE's by default)
    burst_seconds: float = 1.0
    quota_limit: int | None = None
    reply_token_ttl_s: float = 60.0
    retry_key_ttl_s: float = 24 * 3600.0
    think_time_s: tuple[float, float] = (0.0, 0.0)  # real seconds before a resident reacts
    # Extra real seconds a booking resident spends typing an answer (kana name, phone number)
    # after thinking; (0, 0): typed answers go as fast as taps.
    typing_time_s: tuple[float, float] = (0.0, 0.0)
    auto_react: bool = True
    redelivery: bool = True
    redelivery_delays_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    duplicate_ratio: float = 0.0
    reorder_ratio: float = 0.0
    max_events_per_body: int = 20
    webhook_concurrency: int = 32  # hides round-trip latency on a busy machine
    webhook_timeout_s: float = 2.0
    clock: Clock = field(default_factory=RealClock)
    # Images in messages are fetched like LINE does, through this target's connection (the
    # relay path: the webhook's unix socket and TLS); None uses `webhook`. With neither, or
    # with fetch_images off, image URLs are only checked (https), not fetched.
    image_target: WebhookTarget | None = None
    fetch_images: bool = True
    # gc.freeze() at start: keeps the specs and the population out of full collections (big
    # populations otherwise stall). Process-wide, so off by default; kairan-sim turns it on.
    freeze_gc: bool = False
    # The trainee's phone (研修用スマートフォン, kairand.simulator.phone): its local API listens
    # on this unix socket; None: the phone exists (Simulator.phone) but has no socket.
    phone_socket: str | None = None
    # Where the simulated LINE keeps what LINE itself never forgets (who is a friend, who
    # blocked, this month's message count) between runs, e.g. `make demo` started again:
    # without it a restart re-sent follow events for old friends, forgot the month's count and
    # could not deliver to friends of earlier runs. None: everything lives in memory only.
    state_file: str | None = None


STATE_VERSION = 1


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("simulator.state_unreadable", error=type(exc).__name__)
        return None
    return state if isinstance(state, dict) else None


def _write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(state), encoding="utf-8")
    partial.replace(path)


class Simulator:
    """Use as `async with Simulator(SimulatorConfig(...)) as sim:` or start()/stop()."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        c = self.config
        self.population = Population(c.population, c.seed, c.municipality)
        self.bot_user_id = c.bot_user_id or bot_user_id(c.seed)
        self.ledger = Ledger()
        self.platform = Platform(
            channel_secret=c.channel_secret,
            access_tokens=frozenset({c.access_token}),
            bot_user_id=self.bot_user_id,
            bot_display_name=f"{c.municipality.name}（訓練）",
            clock=c.clock,
            faults=c.faults,
            rates=c.rates,
            burst_seconds=c.burst_seconds,
            quota_limit=c.quota_limit,
            reply_token_ttl_s=c.reply_token_ttl_s,
            retry_key_ttl_s=c.retry_key_ttl_s,
            seed=c.seed,
            ledger=self.ledger,
        )
        target = c.image_target or c.webhook
        if c.fetch_images and target is not None:
            self.platform.image_fetcher = ImageFetcher(target)
        self.platform.listeners.append(self._on_delivery)
        self.phone = TraineePhone(
            phone_user_id(c.seed),
            follow=self._phone_follows,
            send_text=lambda text: self._phone_sends(text),
            send_postback=lambda data: self._phone_taps(data),
            is_friend=lambda: self.platform.is_follower(self.phone.user_id),
            clock=c.clock.now,
        )
        self.platform.listeners.append(self.phone.on_delivery)
        self.events = EventFactory(c.clock, c.seed)
        self.sender: WebhookSender | None = None
        self.outbox: list[dict[str, Any]] = []  # events when no webhook target is set
        self.memories: dict[str, behaviour.Memory] = {}
        # Window-reservation bookers: plan, memory, and what they went through.
        self.bookers: dict[str, tuple[booking.Plan, booking.BookerMemory]] = {}
        self.booking_outcomes: Counter[str] = Counter()
        self.booking_sent_at: dict[str, float] = {}
        self.booking_latency_ms: list[float] = []
        # Same-day queue visitors: what each remembers of their ticket.
        self.visitors: dict[str, queue_visitor.Visit] = {}
        # Residents a trainee plays by hand (`kairan-sim-chat`): no automatic reactions, never
        # picked by arrivals, bookings or the queue. See `play`.
        self.played: list[str] = []
        self.outcomes: Counter[str] = Counter()
        # How late residents react compared with their think time (ms): the "falling behind"
        # figure bench/simulator_population.py reports.
        self.reaction_lag_ms: deque[float] = deque(maxlen=100_000)
        self._rngs: dict[str, random.Random] = {}
        self._runners: list[web.AppRunner] = []
        self._reactions: set[asyncio.Task[None]] = set()
        self._next_follower = 0
        self.api_url = ""
        self.data_url = ""

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        c = self.config
        log.info("simulator.start", population=len(self.population), seed=c.seed)
        if c.state_file is not None:
            self._restore(await asyncio.to_thread(_read_state, Path(c.state_file)))
        await asyncio.to_thread(messaging_spec)  # reads and compiles the spec files once
        # The specs and the population are long-lived: keep them out of every full garbage
        # collection (with 10,000 residents those pauses otherwise show as resident lag).
        if c.freeze_gc:
            gc.freeze()
        # Two listeners, like LINE's two hosts: blob operations exist only on the data one.
        self.api_url = await self._listen(make_api_app(self.platform), c.port)
        self.data_url = await self._listen(make_data_app(self.platform), c.data_port)
        if c.webhook is not None:
            self.sender = WebhookSender(
                c.webhook,
                c.channel_secret,
                self.bot_user_id,
                seed=c.seed,
                max_events_per_body=c.max_events_per_body,
                concurrency=c.webhook_concurrency,
                timeout_s=c.webhook_timeout_s,
                redelivery=c.redelivery,
                redelivery_delays_s=c.redelivery_delays_s,
                duplicate_ratio=c.duplicate_ratio,
                reorder_ratio=c.reorder_ratio,
            )
            await self.sender.start()
        if c.phone_socket is not None:
            self._runners.append(await serve_phone(self.phone, Path(c.phone_socket)))

    async def _listen(self, app: web.Application, port: int) -> str:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        self._runners.append(runner)
        try:
            await web.TCPSite(runner, self.config.host, port).start()
        except BaseException:
            await self.stop()
            raise
        return f"http://{self.config.host}:{runner.addresses[0][1]}"

    async def stop(self) -> None:
        for task in list(self._reactions):
            task.cancel()
        await asyncio.gather(*self._reactions, return_exceptions=True)
        if self.config.state_file is not None:
            await asyncio.to_thread(_write_state, Path(self.config.state_file), self._state())
        if self.sender is not None:
            await self.sender.stop()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.config.phone_socket is not None:
            await asyncio.to_thread(Path(self.config.phone_socket).unlink, missing_ok=True)
        if self.platform.image_fetcher is not None:
            await self.platform.image_fetcher.close()
        log.info("simulator.stop", receipts=len(self.ledger))

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def idle(self) -> bool:
        return not self._reactions and (self.sender is None or self.sender.idle)

    async def wait_idle(self) -> None:
        """Wait until no resident is about to react and no webhook is queued or in flight
        (bound it with `asyncio.timeout`; with a bot attached, a reply may still be coming)."""
        while True:
            await asyncio.sleep(0.005)
            if self.idle:
                await asyncio.sleep(0.02)  # a reply may still be on its way back
                if self.idle:
                    return

    # ---- what residents do ----------------------------------------------------------------
    def resident(self, user_id: str) -> Resident:
        found = self.population.get(user_id)
        if found is None:
            raise KeyError("not a resident of this simulation")
        return found

    def profile_of(self, resident: Resident) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "userId": resident.user_id,
            "displayName": resident.display_name,
            "language": resident.language,
        }
        if resident.picture_url:
            profile["pictureUrl"] = resident.picture_url
        if resident.status_message:
            profile["statusMessage"] = resident.status_message
        return profile

    def follow(self, n: int = 1, residents: list[Resident] | None = None) -> list[Resident]:
        """Residents add the account as a friend (a follow event each). By default the next `n`
        residents who have never followed; pass `residents` to (re)follow specific ones."""
        if residents is None:
            residents = self.population.residents[self._next_follower : self._next_follower + n]
            self._next_follower += len(residents)
            residents = [r for r in residents if r.user_id not in self.played]
        for resident in residents:
            uid = resident.user_id
            unblocked = uid in self.platform.blocked
            self.platform.add_follower(self.profile_of(resident))
            self.memories[uid] = behaviour.Memory()
            token = self.platform.new_reply_token(uid)
            self.emit(self.events.follow(uid, token, unblocked=unblocked))
        return residents

    async def arrive(self, rate_per_s: float, count: int | None = None) -> int:
        """Residents who have never followed add the account at `rate_per_s`, until `count`
        have (or everyone has). Returns how many followed. Cancel it to stop arrivals."""
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        interval = 1.0 / rate_per_s
        loop = asyncio.get_running_loop()
        started, done = loop.time(), 0
        while (count is None or done < count) and self.follow(1):
            done += 1
            # Paced against the start time, so a slow loop catches up instead of drifting.
            await asyncio.sleep(max(0.0, started + done * interval - loop.time()))
        return done

    def summary(self) -> dict[str, int]:
        """Counts for a status line or a headless demo report (no personal data)."""
        stats = self.sender.stats if self.sender is not None else None
        return {
            "residents": len(self.population),
            "friends": len(self.platform.profiles) - len(self.platform.blocked),
            "blocked": len(self.platform.blocked),
            "messages_received": len(self.ledger),
            "answers": self.outcomes["answered"],
            "finished": self.outcomes["finished"],
            "abandoned": self.outcomes["abandoned"],
            "settings_changes": self.outcomes["change_settings"],
            "webhook_events": stats.events if stats else len(self.outbox),
            "webhook_failures": stats.failures if stats else 0,
            "webhook_redeliveries": stats.redeliveries if stats else 0,
            "bookings_held": len(attendance := self.attendance()),
            "booking_no_shows": sum(not came for came in attendance.values()),
        }

    def status_text(self) -> str:
        """The summary in Japanese, for trainees watching a console."""
        s = self.summary()
        return (
            f"友だち {s['friends']} | 受信メッセージ {s['messages_received']} | "
            f"回答 {s['answers']} | 完了 {s['finished']} | 離脱 {s['abandoned']} | "
            f"設定変更 {s['settings_changes']} | ブロック {s['blocked']} | "
            f"webhook {s['webhook_events']}件 失敗 {s['webhook_failures']}"
            f"{self._rich_status()}"
        )

    def _rich_status(self) -> str:
        """Cards, images and stickers residents received, and image fetches."""
        kinds = self.ledger.kinds()
        fetcher = self.platform.image_fetcher
        fetched = fetcher.fetched if fetcher is not None else []
        if not (kinds["flex"] or kinds["image"] or kinds["sticker"] or fetched):
            return ""
        ok = sum(1 for _, status in fetched if status == 200)
        return (
            f" | カード {kinds['flex']} 画像 {kinds['image']} スタンプ {kinds['sticker']}"
            f" | 画像取得 成功 {ok} 失敗 {len(fetched) - ok}"
        )

    # ---- what the platform remembers between runs (state_file) --------------------------
    def _state(self) -> dict[str, Any]:
        p = self.platform
        return {
            "version": STATE_VERSION,
            "seed": self.config.seed,
            "population": len(self.population),
            "next_follower": self._next_follower,
            "friends": sorted(p.profiles),
            "blocked": sorted(p.blocked),
            "usage_month": list(p.usage_month()),
            "usage": p.current_usage(),
        }

    def _restore(self, state: dict[str, Any] | None) -> None:
        if state is None:
            return
        same_town = (state.get("version"), state.get("seed"), state.get("population")) == (
            STATE_VERSION,
            self.config.seed,
            len(self.population),
        )
        if not same_town:
            log.warning("simulator.state_ignored", reason="another seed or population")
            return
        p = self.platform
        for uid in state.get("friends", []):
            resident = self.population.get(uid)
            if resident is not None:
                p.add_follower(self.profile_of(resident))
                self.memories[uid] = behaviour.Memory()
            elif uid == self.phone.user_id:
                p.add_follower({"userId": uid, "displayName": PHONE_NAME, "language": "ja"})
        for uid in state.get("blocked", []):
            if uid in p.profiles:
                p.block(uid)
                self.memories[uid] = behaviour.Memory(blocked=True)
        self._next_follower = int(state.get("next_follower", 0))
        if tuple(state.get("usage_month", ())) == p.usage_month():
            p.usage = int(state.get("usage", 0))
        log.info("simulator.state_restored", friends=len(p.profiles) - len(p.blocked))

    # ---- the trainee's phone --------------------------------------------------------------
    def _phone_follows(self) -> None:
        uid = self.phone.user_id
        unblocked = uid in self.platform.blocked
        self.platform.add_follower({"userId": uid, "displayName": PHONE_NAME, "language": "ja"})
        self.emit(self.events.follow(uid, self.platform.new_reply_token(uid), unblocked=unblocked))

    def _phone_sends(self, text: str) -> None:
        uid = self.phone.user_id
        self.emit(self.events.text(uid, self.platform.new_reply_token(uid), text))

    def _phone_taps(self, data: str) -> None:
        uid = self.phone.user_id
        self.emit(self.events.postback(uid, self.platform.new_reply_token(uid), data))

    def unfollow(self, user_id: str) -> None:
        """The resident blocks the account."""
        self.platform.block(user_id)
        self.memories[user_id] = behaviour.Memory(blocked=True)
        self.emit(self.events.unfollow(user_id))

    def send_text(self, user_id: str, text: str) -> dict[str, Any]:
        """The resident types free text."""
        event = self.events.text(user_id, self.platform.new_reply_token(user_id), text)
        self.emit(event)
        return event

    def send_postback(
        self, user_id: str, data: str, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        event = self.events.postback(user_id, self.platform.new_reply_token(user_id), data, params)
        self.emit(event)
        return event

    def start_booking(
        self, user_id: str, intent: str | None = None, patience: int | None = None
    ) -> None:
        """The resident types 予約 (a friend already); they then book through the dialogue,
        taking another time when a slot fills up (up to PATIENCE times; default: their own),
        and keep, cancel or change the booking."""
        resident = self.resident(user_id)
        plan = booking.plan_for(resident.seed, intent)
        if patience is not None:
            plan = replace(plan, patience=patience)
        self.bookers[user_id] = (plan, booking.BookerMemory())
        self.booking_sent_at[user_id] = time.monotonic()
        self.send_text(user_id, "予約")

    def take_ticket(self, user_id: str, service_hint: str = "") -> None:
        """The resident types 番号札を取る and taps the service they came for."""
        rng = self._rngs.get(user_id) or random.Random(user_id)
        visit = queue_visitor.plan_for(rng, (service_hint,) if service_hint else ())
        self.visitors[user_id] = visit
        self.send_text(user_id, "番号札を取る")

    def play(self, n: int) -> list[str]:
        """The last N residents become the trainee's own, played by hand (訓練: the newcomer
        acts as a resident in the chat): friends already, and they never react by themselves."""
        chosen = self.population.residents[len(self.population) - n :] if n > 0 else []
        self.played.extend(r.user_id for r in chosen if r.user_id not in self.played)
        self.befriend(chosen)
        return [r.user_id for r in chosen]

    def buttons(self, user_id: str) -> list[dict[str, Any]]:
        """The quick-reply actions of the last message that offered any (what a person sees
        as buttons under the chat)."""
        for receipt in reversed(self.ledger.for_user(user_id)):
            actions = [
                item["action"]
                for message in receipt.messages
                for item in (message.get("quickReply") or {}).get("items", [])
                if isinstance(item.get("action"), dict)
            ]
            if actions:
                return actions
        return []

    def tap(self, user_id: str, n: int) -> dict[str, Any]:
        """The resident taps quick-reply button N (1 = leftmost) of `buttons(user_id)`."""
        actions = self.buttons(user_id)
        if not 1 <= n <= len(actions):
            raise ValueError(f"there is no button {n}")
        action = actions[n - 1]
        if action.get("type") == "postback":
            return self.send_postback(user_id, str(action["data"]))
        if action.get("type") == "message":
            return self.send_text(user_id, str(action["text"]))
        raise ValueError(f"a {action.get('type')} button cannot be tapped here")

    def scan_qr(self, user_id: str, url: str) -> dict[str, Any]:
        """The resident scans the kiosk ticket's QR code with LINE and sends the pre-filled
        message (the walk-in who then follows the queue in the chat)."""
        self.visitors.setdefault(user_id, queue_visitor.Visit())
        return self.send_text(user_id, queue_visitor.text_of_qr(url))

    async def queue_over_time(self, rate_per_s: float) -> int:
        """Friends take a queue ticket in LINE at RATE_PER_S until cancelled."""
        rng = random.Random(self.config.seed * 37 + 11)
        started = 0
        while True:
            candidates = [
                uid
                for uid in self.platform.profiles
                if uid not in self.visitors
                and uid not in self.played
                and self.platform.is_follower(uid)
            ]
            if candidates:
                self.take_ticket(rng.choice(candidates))
                started += 1
            await asyncio.sleep(1.0 / rate_per_s)

    async def book_over_time(self, rate_per_s: float, intent: str | None = None) -> int:
        """Friends who have not booked yet type 予約 at RATE_PER_S (random order), until every
        friend has; returns how many started. Cancel it to stop."""
        rng = random.Random(self.config.seed * 31 + 7)
        started = 0
        while True:
            candidates = [
                uid
                for uid in self.platform.profiles
                if uid not in self.bookers
                and uid not in self.played
                and self.platform.is_follower(uid)
            ]
            if candidates:
                self.start_booking(rng.choice(candidates), intent)
                started += 1
            await asyncio.sleep(1.0 / rate_per_s)

    def rush(self, count: int, intent: str | None = None) -> int:
        """The October rush: COUNT friends type 予約 the moment the window opens."""
        friends = [
            uid
            for uid in self.platform.profiles
            if uid not in self.bookers and uid not in self.played and self.platform.is_follower(uid)
        ][:count]
        for uid in friends:
            self.start_booking(uid, intent)
        return len(friends)

    def befriend(self, residents: list[Resident]) -> None:
        """Residents who are friends already (no follow event: they followed long ago)."""
        for resident in residents:
            self.platform.add_follower(self.profile_of(resident))
            self.memories[resident.user_id] = behaviour.Memory()

    def attendance(self) -> dict[str, bool]:
        """Booking number → whether its holder comes to the window on the day (False: a
        no-show, Plan.no_show), for every booking a resident still holds."""
        return {
            memory.number: not plan.no_show
            for _uid, (plan, memory) in self.bookers.items()
            if memory.number and memory.state in ("booked", "done")
        }

    def booked(self) -> dict[str, str]:
        """user id → booking number each booker was last told (and still holds)."""
        return {
            uid: memory.number
            for uid, (_plan, memory) in self.bookers.items()
            if memory.number and memory.state in ("booked", "done")
        }

    async def _react_booking(
        self, uid: str, messages: list[dict[str, Any]], rng: random.Random
    ) -> None:
        plan, memory = self.bookers[uid]
        action, memory, outcome = booking.react(plan, memory, messages, rng)
        self.bookers[uid] = (plan, memory)
        self.booking_outcomes[outcome] += 1
        lo, hi = self.config.typing_time_s
        if action is not None and action.kind == "text" and hi > 0:
            await asyncio.sleep(rng.uniform(lo, hi))
        if action is not None and self.platform.is_follower(uid):
            self.booking_sent_at[uid] = time.monotonic()
            self._perform(uid, action)

    def rich_menu_actions(self, user_id: str) -> list[dict[str, Any]]:
        menu = self.platform.rich_menu_for(user_id)
        if menu is None:
            return []
        return [
            a["action"] for a in menu.body.get("areas", []) if isinstance(a.get("action"), dict)
        ]

    def tap_rich_menu(self, user_id: str) -> bool:
        """The resident taps 「設定を変更」 (or the closest settings tile) on the rich menu."""
        action = behaviour.settings_action(self.rich_menu_actions(user_id))
        if action is None:
            return False
        self._perform(user_id, action)
        return True

    def emit(self, event: dict[str, Any]) -> None:
        if self.sender is None:
            self.outbox.append(event)
        else:
            self.sender.enqueue(event)

    def _perform(self, user_id: str, action: behaviour.Action) -> None:
        if action.kind == "unfollow":
            self.unfollow(user_id)
        elif action.kind == "text":
            self.send_text(user_id, action.text)
        else:
            self.send_postback(user_id, action.data, action.params)

    def _on_delivery(self, receipt: Receipt, messages: list[dict[str, Any]]) -> None:
        if (
            not self.config.auto_react
            or receipt.user_id not in self.population
            or receipt.user_id in self.played
        ):
            return
        task = asyncio.get_running_loop().create_task(
            self._react(receipt, messages), name="sim-resident-reaction"
        )
        self._reactions.add(task)
        task.add_done_callback(self._reaction_done)

    def _reaction_done(self, task: asyncio.Task[None]) -> None:
        self._reactions.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator.reaction.failed", error=repr(task.exception()))

    async def _react(self, receipt: Receipt, messages: list[dict[str, Any]]) -> None:
        uid = receipt.user_id
        rng = self._rngs.get(uid)
        if rng is None:
            rng = self._rngs[uid] = self.resident(uid).rng()
        is_booking = uid in self.bookers and booking.is_booking_message(messages)
        if is_booking:
            # Round trip of the last booking step: event sent → reply received.
            sent = self.booking_sent_at.pop(uid, None)
            if sent is not None:
                self.booking_latency_ms.append((time.monotonic() - sent) * 1000)
        lo, hi = self.config.think_time_s
        think = rng.uniform(lo, hi) if hi > 0 else 0.0
        due = time.monotonic() + think
        if think:
            await asyncio.sleep(think)
        if is_booking:
            await self._react_booking(uid, messages, rng)
            return
        if uid in self.visitors and queue_visitor.is_queue_message(messages):
            action, self.visitors[uid] = queue_visitor.react(self.visitors[uid], messages, rng)
            if action is not None and self.platform.is_follower(uid):
                self._perform(uid, action)
            return
        memory = self.memories.get(uid, behaviour.Memory())
        reaction = behaviour.react(
            self.resident(uid),
            messages,
            memory,
            rng,
            kind=receipt.kind,
            rich_menu_actions=self.rich_menu_actions(uid),
            program_keyword=(
                self.config.municipality.program_keyword
                if self.config.municipality.school_districts
                else ""
            ),
        )
        self.reaction_lag_ms.append((time.monotonic() - due) * 1000)
        self.memories[uid] = reaction.memory
        self.outcomes[reaction.reason] += 1
        if reaction.action is not None and self.platform.is_follower(uid):
            self._perform(uid, reaction.action)

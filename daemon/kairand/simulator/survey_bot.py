"""A minimal webhook receiver that runs a small survey through the simulator's reply API.

It is NOT Kairan's survey: it exists so that tests and bench/simulator_population.py can drive
the simulator end to end without the daemon (measuring the simulator, not the daemon). It
verifies every signature, answers 200 at once and replies asynchronously, like a real bot.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from kairand.simulator.webhook import sign

TOPIC_LABELS = ("子育て", "高齢者・介護", "健康・医療", "防災・防犯", "イベント", "ごみ・環境")


def _postback(label: str, data: str) -> dict[str, Any]:
    return {
        "type": "action",
        "action": {"type": "postback", "label": label, "data": data, "displayText": label},
    }


def _question(text: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "quickReply": {"items": items}}]


@dataclass
class SurveyBot:
    api_url: str
    access_token: str
    channel_secret: str
    areas: tuple[str, ...]
    events: Counter[str] = field(default_factory=Counter)
    seen_event_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    bad_signatures: int = 0
    rate_limited: int = 0
    reply_status: Counter[int] = field(default_factory=Counter)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _encoded: dict[str, bytes] = field(default_factory=dict)

    # ---- the survey, as data --------------------------------------------------------------
    def step(
        self, user_id: str, data: dict[str, str], params: dict[str, str]
    ) -> list[dict[str, Any]]:
        answers = self.answers.setdefault(user_id, {"topics": []})
        q = data.get("q")
        if q == "consent":
            if data.get("a") != "yes":
                return [{"type": "text", "text": "承知しました。いつでも設定できます。"}]
            return _question(
                "性別を教えてください。",
                [
                    _postback(lbl, f"q=gender&a={code}")
                    for lbl, code in (("男性", "m"), ("女性", "f"), ("回答しない", "x"))
                ],
            )
        if q == "gender":
            answers["gender"] = data.get("a")
            return self._areas(0)
        if q == "areapage":
            return self._areas(int(data.get("p", "0")))
        if q == "area":
            answers["area"] = data.get("a")
            return self._topics(answers)
        if q == "topic":
            if data.get("a") == "done":
                return _question(
                    "生年月日を選んでください。",
                    [
                        {
                            "type": "action",
                            "action": {
                                "type": "datetimepicker",
                                "label": "生年月日を選ぶ",
                                "data": "q=birth",
                                "mode": "date",
                                "initial": "1980-01-01",
                                "min": "1920-01-01",
                                "max": "2011-12-31",
                            },
                        }
                    ],
                )
            answers["topics"].append(data.get("a"))
            return self._topics(answers)
        if q == "birth":
            answers["birth"] = params.get("date")
            self.completed.add(user_id)
            return [{"type": "text", "text": "登録ありがとうございました。"}]
        if q == "settings":
            self.answers[user_id] = {"topics": []}
            return self.start()
        return [{"type": "text", "text": "メニューからお選びください。"}]

    def _areas(self, page: int) -> list[dict[str, Any]]:
        # 11 areas a page plus 前へ/次へ: LINE allows 13 quick-reply items.
        per_page = 11
        start = page * per_page
        items = [
            _postback(a, f"q=area&a={start + i}")
            for i, a in enumerate(self.areas[start : start + per_page])
        ]
        if page > 0:
            items.append(_postback("前へ", f"q=areapage&p={page - 1}"))
        if start + per_page < len(self.areas):
            items.append(_postback("次へ", f"q=areapage&p={page + 1}"))
        return _question("お住まいの地域を選んでください。", items)

    def _topics(self, answers: dict[str, Any]) -> list[dict[str, Any]]:
        items = [
            _postback(t, f"q=topic&a={i}")
            for i, t in enumerate(TOPIC_LABELS)
            if str(i) not in answers["topics"]
        ]
        return _question(
            "受け取りたい情報を選んでください。", [*items, _postback("完了", "q=topic&a=done")]
        )

    def start(self) -> list[dict[str, Any]]:
        return _question(
            "友だち追加ありがとうございます。利用目的をご確認のうえ、同意をお願いします。",
            [_postback("同意する", "q=consent&a=yes"), _postback("同意しない", "q=consent&a=no")],
        )

    # ---- HTTP ------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = sign(self.channel_secret, raw)
        if not hmac.compare_digest(expected, request.headers.get("x-line-signature", "")):
            self.bad_signatures += 1
            return web.Response(status=400)
        body = json.loads(raw)
        for event in body["events"]:
            if event["webhookEventId"] in self.seen_event_ids:
                self.duplicates += 1
                continue
            self.seen_event_ids.add(event["webhookEventId"])
            self.events[event["type"]] += 1
            task = asyncio.create_task(self._answer(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(text="OK")

    async def _answer(self, event: dict[str, Any]) -> None:
        token = event.get("replyToken")
        if not token:
            return
        user_id = event["source"]["userId"]
        if event["type"] == "follow":
            messages = self.start()
        elif event["type"] == "postback":
            postback = event["postback"]
            messages = self.step(
                user_id, dict(parse_qsl(postback["data"])), postback.get("params") or {}
            )
        else:
            messages = [{"type": "text", "text": "メニューからお選びください。"}]
        assert self._session is not None
        # The same questions go to everyone: encode each message set once.
        key = repr(messages)  # much cheaper than encoding JSON
        encoded = self._encoded.get(key)
        if encoded is None:
            encoded = self._encoded[key] = json.dumps(messages, ensure_ascii=False).encode()
        body = b'{"replyToken":"' + token.encode() + b'","messages":' + encoded + b"}"
        headers = {
            "Authorization": f"Bearer {self.access_token}",
            "Content-Type": "application/json",
        }
        for attempt in range(5):
            async with self._session.post(
                f"{self.api_url}/v2/bot/message/reply", data=body, headers=headers
            ) as response:
                await response.read()
                status = response.status
            if status != 429:
                break
            # Rate limited: a well-behaved bot backs off (a reply token lasts about a minute).
            self.rate_limited += 1
            await asyncio.sleep(0.05 * 2**attempt)
        self.reply_status[status] += 1

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhook", self.handle)

        async def session_ctx(app: web.Application) -> Any:
            self._session = aiohttp.ClientSession()
            yield
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()

        app.cleanup_ctx.append(session_ctx)
        return app

    @property
    def idle(self) -> bool:
        return not self._tasks


async def _serve(args: argparse.Namespace) -> None:
    bot = SurveyBot(args.api_url, args.access_token, args.channel_secret, tuple(args.areas))
    runner = web.AppRunner(bot.make_app(), access_log=None)
    await runner.setup()
    await web.UnixSite(runner, args.socket).start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    print(
        json.dumps(
            {
                "events": dict(bot.events),
                "completed": len(bot.completed),
                "rate_limited": bot.rate_limited,
                "cpu_s": time.process_time(),
                "duplicates": bot.duplicates,
                "bad_signatures": bot.bad_signatures,
                "reply_status": {str(k): v for k, v in bot.reply_status.items()},
            }
        ),
        flush=True,
    )
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Run the bot on a unix socket (bench/simulator_population.py starts it as a process)."""
    parser = argparse.ArgumentParser(prog="python -m kairand.simulator.survey_bot")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--access-token", required=True)
    parser.add_argument("--channel-secret", required=True)
    parser.add_argument("--areas", nargs="+", required=True)
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

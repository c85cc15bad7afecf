"""Every message a synthetic resident received, queryable by tests and the demo:
"who received delivery X, and how often"."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, eq=False)
class Receipt:
    """One request's messages as one resident received them. Never changed once recorded.

    The messages are kept as the raw request body (bytes, shared by every recipient of a
    multicast): 10,000 residents x a survey's worth of parsed dicts would make every full
    garbage collection pause the simulator for a noticeable time. Not `frozen`: a frozen
    dataclass sets each field through `object.__setattr__`, and a multicast records 500 of
    these (0.71 ms against 0.15 ms, a fifth of the simulator's work per multicast).
    """

    user_id: str
    kind: str  # "reply" | "push" | "multicast"
    request_id: str
    retry_key: str | None
    body: bytes  # the request body as sent to the Messaging API
    at: float  # simulated epoch seconds

    @property
    def messages(self) -> tuple[dict[str, Any], ...]:
        return tuple(json.loads(self.body)["messages"])

    @property
    def message_types(self) -> tuple[str, ...]:
        """LINE message types in order, e.g. ("text", "image", "flex", "sticker")."""
        return tuple(str(m.get("type", "")) for m in self.messages)

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(m.get("text", m.get("altText", "")) for m in self.messages)

    def contains_text(self, needle: str) -> bool:
        return any(needle in t for t in self.texts)


@dataclass
class Ledger:
    receipts: list[Receipt] = field(default_factory=list)
    _by_user: dict[str, list[Receipt]] = field(default_factory=dict)

    def record(self, receipt: Receipt) -> None:
        self.receipts.append(receipt)
        self._by_user.setdefault(receipt.user_id, []).append(receipt)

    def find(
        self,
        *,
        user_id: str | None = None,
        kind: str | None = None,
        request_id: str | None = None,
        retry_key: str | None = None,
        text: str | None = None,
        message_type: str | None = None,
    ) -> list[Receipt]:
        """Receipts matching every given filter (`text` is a substring of any message;
        `message_type` one of the LINE message types the receipt carried)."""
        source: Iterable[Receipt] = (
            self._by_user.get(user_id, []) if user_id is not None else self.receipts
        )
        return [
            r
            for r in source
            if (kind is None or r.kind == kind)
            and (request_id is None or r.request_id == request_id)
            and (retry_key is None or r.retry_key == retry_key)
            and (text is None or r.contains_text(text))
            and (message_type is None or message_type in r.message_types)
        ]

    def kinds(self) -> Counter[str]:
        """LINE message type -> how many messages of it residents received."""
        return Counter(t for r in self.receipts for t in r.message_types)

    def recipients(self, **filters: Any) -> Counter[str]:
        """user id -> how many matching receipts that resident got (2+ means a duplicate)."""
        return Counter(r.user_id for r in self.find(**filters))

    def for_user(self, user_id: str) -> list[Receipt]:
        return list(self._by_user.get(user_id, []))

    def last_for(self, user_id: str) -> Receipt | None:
        got = self._by_user.get(user_id)
        return got[-1] if got else None

    def __len__(self) -> int:
        return len(self.receipts)

    async def wait_for(self, predicate: Callable[[Ledger], bool]) -> None:
        """Wait until `predicate(ledger)` holds; bound it with `asyncio.timeout`."""
        # Polling: receipts arrive from many handlers; a 5 ms poll is simpler than wiring events.
        while not predicate(self):  # noqa: ASYNC110
            await asyncio.sleep(0.005)

"""LINE's monthly message quota: read it before sending (docs/line-facts.md: a message counts
once per recipient; municipal plans are usually unlimited)."""

from __future__ import annotations

from dataclasses import dataclass

from kairand.line.client import LineApi


@dataclass(frozen=True)
class Quota:
    limited: bool
    value: int | None
    used: int

    @property
    def remaining(self) -> int | None:
        if not self.limited or self.value is None:
            return None
        return max(0, self.value - self.used)

    def allows(self, recipients: int) -> bool:
        remaining = self.remaining
        return remaining is None or recipients <= remaining


async def read_quota(line: LineApi) -> Quota:
    quota = await line.messaging.get_message_quota(_request_timeout=line.timeout)
    consumption = await line.messaging.get_message_quota_consumption(_request_timeout=line.timeout)
    kind = getattr(quota.type, "value", quota.type)
    value = int(quota.value) if quota.value is not None else None
    return Quota(kind == "limited", value, int(consumption.total_usage or 0))

"""Retention rules as data, and their evaluation (pure: rules + clock + resident facts in,
what expires and who gets a re-registration notice out; no I/O).

A rule applies to the whole registration (the resident row and everything behind it) or to
the answers of one survey question, with one policy:

- `while_following` (the default for everything without a rule): kept until the resident
  unfollows (the unfollow purge is not this module's business);
- `annual`: destroyed at a yearly boundary, 31 March 23:59 Japan time unless configured (K2),
  with one polite re-registration notice in March before it;
- `months_after_interaction`: destroyed N months after the resident last interacted.

Times are Unix seconds; calendar arithmetic is done in Japan time (UTC+9, no daylight saving).
Annual boundaries are applied "exactly once": the caller passes the time of the last completed
run, and every boundary after it (and not after now) is applied in order — so a month, or a
year, of downtime applies each missed boundary once and nothing twice.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kairand.records import ResidentFacts as ResidentFacts
from kairand.retention.masking import MASK_TARGET_LABELS, RESERVATION_RULES, MaskRule
from kairand.timeutil import JST

WEEKDAYS_JA = "月火水木金土日"

Code = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]

DEFAULT_NOTICE_TEXT = (
    "【登録内容の更新についてのお知らせ】\n"
    "いつもご利用いただき、ありがとうございます。\n"
    "このアカウントの登録内容は年度ごとに更新していただく仕組みとなっており、"
    "現在の登録内容は{deadline}に削除されます。\n"
    "{restart}以降も引き続きお知らせの受け取りを希望される場合は、"
    "お手数ですが、メニューから改めてご登録くださいますようお願いいたします。\n"
    "※このお知らせは、今年度1回のみお送りしています。"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_clock(value: str) -> tuple[int, int]:
    hour, minute = value.split(":")
    return int(hour), int(minute)


def _check_month_day(month: int, day: int, what: str) -> None:
    # 29 February would not exist in most years: refuse it rather than guess.
    if day > calendar.monthrange(2023, month)[1]:
        raise ValueError(f"{what}: {month}/{day} does not exist every year")


class WhileFollowing(_Model):
    kind: Literal["while_following"] = "while_following"


class Annual(_Model):
    kind: Literal["annual"] = "annual"
    month: Annotated[int, Field(ge=1, le=12)] = 3
    day: Annotated[int, Field(ge=1, le=31)] = 31
    time: ClockTime = "23:59"
    """The yearly boundary in Japan time: data created before it is destroyed at it."""
    notice_month: Annotated[int, Field(ge=1, le=12)] = 3
    notice_day: Annotated[int, Field(ge=1, le=31)] = 1
    notice_time: ClockTime = "10:00"
    """When the one re-registration notice goes out (the last such date before the boundary)."""
    notify: bool = True
    notice_text: Annotated[str, Field(min_length=1, max_length=5000)] = DEFAULT_NOTICE_TEXT
    """Japanese text of the notice; {deadline} and {restart} are filled in."""

    @model_validator(mode="after")
    def _dates_exist(self) -> Annual:
        _check_month_day(self.month, self.day, "annual boundary")
        _check_month_day(self.notice_month, self.notice_day, "annual notice date")
        return self


class MonthsAfterInteraction(_Model):
    kind: Literal["months_after_interaction"] = "months_after_interaction"
    months: Annotated[int, Field(ge=1, le=120)]


Policy = Annotated[WhileFollowing | Annual | MonthsAfterInteraction, Field(discriminator="kind")]


class RetentionRule(_Model):
    scope: Literal["registration", "question"]
    """registration: the resident and all their data; question: the answers to one question."""
    question: Code | None = None
    policy: Policy

    @model_validator(mode="after")
    def _question_fits_scope(self) -> RetentionRule:
        if (self.scope == "question") != (self.question is not None):
            raise ValueError("`question` is required for scope 'question' and only there")
        return self


class RetentionRules(_Model):
    rules: tuple[RetentionRule, ...] = ()
    daily_run_time: ClockTime = "03:00"
    """When the daily retention run happens (Japan time); boundaries also wake it."""
    masking: tuple[MaskRule, ...] = ()
    """Irreversible masking applied by the daily run (W7)."""

    @model_validator(mode="after")
    def _one_rule_per_target(self) -> RetentionRules:
        targets = [(r.scope, r.question) for r in self.rules]
        if len(set(targets)) != len(targets):
            raise ValueError("at most one rule per registration / per question")
        return self

    def annual_rules(self) -> list[RetentionRule]:
        return [r for r in self.rules if isinstance(r.policy, Annual)]


# -- calendar ----------------------------------------------------------------------------


def _at(year: int, month: int, day: int, clock: str) -> int:
    hour, minute = _parse_clock(clock)
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=JST).timestamp())


def jst(unix_seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix_seconds, JST)


def boundary_in_year(policy: Annual, year: int) -> int:
    return _at(year, policy.month, policy.day, policy.time)


def boundaries_between(policy: Annual, after: int, upto: int) -> list[int]:
    """Every annual boundary B with after < B <= upto, oldest first."""
    found = []
    for year in range(jst(after).year, jst(upto).year + 1):
        boundary = boundary_in_year(policy, year)
        if after < boundary <= upto:
            found.append(boundary)
    return found


def next_boundary(policy: Annual, now: int) -> int:
    """The first boundary strictly after NOW."""
    year = jst(now).year
    while boundary_in_year(policy, year) <= now:
        year += 1
    return boundary_in_year(policy, year)


def notice_time_for(policy: Annual, boundary: int) -> int:
    """The notice instant of the cycle ending at BOUNDARY: the last notice date before it."""
    year = jst(boundary).year
    notice = _at(year, policy.notice_month, policy.notice_day, policy.notice_time)
    if notice >= boundary:
        notice = _at(year - 1, policy.notice_month, policy.notice_day, policy.notice_time)
    return notice


def add_months(unix_seconds: int, months: int) -> int:
    """Same Japan-time wall clock N months later; the day is clamped (31 Jan + 1 = 28/29 Feb)."""
    moment = jst(unix_seconds)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def cycle_name(boundary: int) -> str:
    return jst(boundary).isoformat(timespec="minutes")


def format_deadline_ja(boundary: int) -> str:
    moment = jst(boundary)
    return (
        f"{moment.year}年{moment.month}月{moment.day}日（{WEEKDAYS_JA[moment.weekday()]}）"
        f"{moment.hour}時{moment.minute:02d}分"
    )


def notice_text(policy: Annual, boundary: int) -> str:
    restart = jst(boundary + 60)
    return policy.notice_text.replace("{deadline}", format_deadline_ja(boundary)).replace(
        "{restart}", f"{restart.month}月{restart.day}日"
    )


# -- evaluation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Expiry:
    resident_id: int
    question: str | None
    """None: the whole registration (purge the resident); else the answers to this question."""
    reason: Literal["annual_expiry", "retention"]
    before: int | None = None
    """Only answers given before this time (annual); None: all of them."""
    boundary: int | None = None
    """The annual boundary that expired it (the first one, when several were missed)."""


@dataclass(frozen=True)
class Notice:
    resident_id: int
    cycle: str
    boundary: int
    text: str


def _annual_expiry(
    policy: Annual, anchor: int | None, boundaries: list[int]
) -> tuple[int, int] | None:
    """(first boundary that catches ANCHOR, last boundary) or None."""
    if anchor is None:
        return None
    caught = [b for b in boundaries if anchor < b]
    return (caught[0], boundaries[-1]) if caught else None


def plan_expiries(
    rules: RetentionRules, facts: Iterable[ResidentFacts], since: int, now: int
) -> list[Expiry]:
    """What expires in a run at NOW when the previous run completed at SINCE.

    Whole-registration expiries win over question ones for the same resident; annual wins over
    months_after_interaction. The result is ordered by resident id, registration first.
    """
    boundaries = {
        index: boundaries_between(rule.policy, since, now)
        for index, rule in enumerate(rules.rules)
        if isinstance(rule.policy, Annual)
    }
    ordered = sorted(
        enumerate(rules.rules),
        key=lambda item: (item[1].scope != "registration", item[1].policy.kind != "annual"),
    )
    plan: list[Expiry] = []
    for resident in sorted(facts, key=lambda f: f.resident_id):
        purged = False
        for index, rule in ordered:
            policy = rule.policy
            if purged:
                break
            if rule.scope == "registration":
                if isinstance(policy, Annual) and boundaries[index]:
                    hit = _annual_expiry(policy, resident.registration_anchor, boundaries[index])
                    if hit:
                        plan.append(
                            Expiry(resident.resident_id, None, "annual_expiry", None, hit[0])
                        )
                        purged = True
                elif isinstance(policy, MonthsAfterInteraction) and (
                    add_months(resident.last_interaction_at, policy.months) <= now
                ):
                    plan.append(Expiry(resident.resident_id, None, "retention"))
                    purged = True
                continue
            assert rule.question is not None
            first = resident.first_answer_at.get(rule.question)
            if first is None:
                continue
            if isinstance(policy, Annual) and boundaries[index]:
                hit = _annual_expiry(policy, first, boundaries[index])
                if hit:
                    plan.append(
                        Expiry(resident.resident_id, rule.question, "annual_expiry", hit[1], hit[0])
                    )
            elif isinstance(policy, MonthsAfterInteraction) and (
                add_months(resident.last_interaction_at, policy.months) <= now
            ):
                plan.append(Expiry(resident.resident_id, rule.question, "retention"))
    return plan


def plan_notices(
    rules: RetentionRules,
    facts: Iterable[ResidentFacts],
    now: int,
    already: set[tuple[int, str]],
) -> list[Notice]:
    """Re-registration notices due at NOW: inside a notice window (notice time <= now <
    boundary), to registered residents who receive deliveries and whose data that boundary
    would destroy, once per resident and cycle (ALREADY holds (resident, cycle) pairs sent or
    reserved). Nobody is notified after the boundary: the window closes at it."""
    due: list[tuple[RetentionRule, Annual, int]] = []
    for rule in rules.annual_rules():
        assert isinstance(rule.policy, Annual)
        if not rule.policy.notify:
            continue
        boundary = next_boundary(rule.policy, now)
        if notice_time_for(rule.policy, boundary) <= now:
            due.append((rule, rule.policy, boundary))
    if not due:
        return []
    notices: list[Notice] = []
    for resident in sorted(facts, key=lambda f: f.resident_id):
        if resident.registered_at is None or resident.deliveries_stopped:
            continue
        seen: set[str] = set()
        for rule, policy, boundary in due:
            cycle = cycle_name(boundary)
            if cycle in seen or (resident.resident_id, cycle) in already:
                continue
            affected = (
                resident.registration_anchor < boundary
                if rule.scope == "registration"
                else rule.question in resident.first_answer_at
            )
            if affected:
                seen.add(cycle)
                notices.append(
                    Notice(resident.resident_id, cycle, boundary, notice_text(policy, boundary))
                )
    return notices


def next_wake(rules: RetentionRules, now: int) -> int:
    """When the worker should run next: the daily run time, a boundary, or a notice time."""
    hour, minute = _parse_clock(rules.daily_run_time)
    moment = jst(now)
    daily = moment.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if daily.timestamp() <= now:
        daily += dt.timedelta(days=1)
    candidates = [int(daily.timestamp())]
    for rule in rules.annual_rules():
        assert isinstance(rule.policy, Annual)
        boundary = next_boundary(rule.policy, now)
        candidates.append(boundary)
        notice = notice_time_for(rule.policy, boundary)
        if notice > now:
            candidates.append(notice)
    return min(candidates)


def describe_ja(rules: RetentionRules, titles: Mapping[str, str] | None = None) -> list[str]:
    """One Japanese line per rule, for the handling report and `kairanctl retention show`
    (TITLES: question code -> the survey's title for it)."""
    titles = titles or {}
    lines = []
    for rule in rules.rules:
        question = titles.get(rule.question or "", rule.question)
        target = "登録全体" if rule.scope == "registration" else f"質問「{question}」の回答"
        policy = rule.policy
        if isinstance(policy, Annual):
            text = (
                f"毎年{policy.month}月{policy.day}日 {policy.time}（日本時間）に削除（年度末削除）"
            )
            if policy.notify:
                text += f"。{policy.notice_month}月{policy.notice_day}日に再登録のご案内を1回送信"
        elif isinstance(policy, MonthsAfterInteraction):
            text = f"最後のやり取りから{policy.months}か月後に削除"
        else:
            text = "友だち登録中は保存（ブロック時に削除）"
        lines.append(f"{target}：{text}")
    if not lines:
        lines.append("登録全体：友だち登録中は保存（ブロック時に削除）")
    for mask_rule in rules.masking:
        label = MASK_TARGET_LABELS.get(mask_rule.target, mask_rule.target)
        if mask_rule.overwrite is not None:
            chosen, what = mask_rule.overwrite, "上書きする文字"
        else:
            chosen, what = mask_rule.keep, "残す文字"
        shown = "、".join(str(k + 1) if k >= 0 else f"末尾から{-k}" for k in chosen)
        lines.append(
            f"{label}：{mask_rule.after_months}か月経過後に復元できない形で上書き"
            f"（{what}: {shown + '文字目' if shown else 'なし'}）"
        )
    return lines


def from_stored(found: tuple[int, int, str] | None) -> tuple[int, int, RetentionRules] | None:
    """(version, created_at, rules) from the store's row (its rules as JSON), or None."""
    if found is None:
        return None
    version, created_at, text = found
    return version, created_at, RetentionRules.model_validate_json(text)


DEFAULT_MASK_MONTHS = 3
"""W7: window-reservation names and phones are masked this many months after the booking date
(config privacy.reservation_mask_after_months)."""


def with_reservation_masking(
    rules: RetentionRules, months: int = DEFAULT_MASK_MONTHS
) -> RetentionRules:
    """RULES with W7's reservation masking (kairand.retention.masking.RESERVATION_RULES, after
    MONTHS) for every reservation column the rules do not mask themselves: on by default,
    whatever rules staff saved; a rule of their own for a column (e.g. a full overwrite, or
    another period) replaces the default for that column."""
    own = {rule.target for rule in rules.masking}
    added = tuple(
        rule.model_copy(update={"after_months": months})
        for rule in RESERVATION_RULES
        if rule.target not in own
    )
    return rules.model_copy(update={"masking": rules.masking + added}) if added else rules


DEFAULT_INACTIVITY_MONTHS = 24
DEFAULT_RULES = RetentionRules(
    rules=(
        RetentionRule(
            scope="registration",
            policy=MonthsAfterInteraction(months=DEFAULT_INACTIVITY_MONTHS),
        ),
    )
)
"""S20: the rules in force until staff save their own. A resident who stopped using LINE
without blocking the account (no follow, message, postback or answer for 24 months) is
deleted with reason `retention`, like any registration expiry. Saved rules replace this
default entirely (a municipality that wants another period states it in its own rules)."""

"""Wire shapes of the staff API (`/v1/…`): one declaration shared by the daemon and the TUI.

The TUI imports this module and nothing else from kairand, so it holds plain pydantic models
and constants only: no server code, no store, no aiohttp. Every request model forbids unknown
fields; a body that does not validate is answered with `application/problem+json` naming the
field (see `Problem`). Documented endpoint by endpoint in docs/api.md.

Times on the wire are ISO 8601 with an offset (the daemon answers in Japan time) unless a
field's name ends in `_ms` (Unix milliseconds) or `_at_unix` (Unix seconds).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kairand.conversation.survey import Option, Question, SurveyDefinition
from kairand.delivery.messages import (
    MAX_BUTTONS,
    MAX_LABEL,
    STICKER_PACKAGES,
    CardItem,
    ImageItem,
    LinkButton,
    MessageItem,
    StickerItem,
    default_stickers,
)
from kairand.delivery.model import MAX_MESSAGES, DeliveryContent, Status
from kairand.delivery.recurrence import RecurrenceRule, describe, occurrences
from kairand.glossary import (
    ACTION_LABELS,
    AUDIT_ACTION_LABELS,
    AUDIT_OUTCOME_LABELS,
    CONFIDENTIALITY_LABELS,
    ROLE_LABELS,
    STATUS_LABELS,
    audit_action_label,
    audit_actions_matching,
    audit_target_label,
)
from kairand.segments.model import AgeCondition, ChoiceCondition, SegmentFilter

__all__ = [
    "ACTION_LABELS",
    "API_VERSION",
    "AUDIT_ACTION_LABELS",
    "AUDIT_OUTCOME_LABELS",
    "CONFIDENTIALITY_LABELS",
    "MAX_BUTTONS",
    "MAX_LABEL",
    "MAX_MESSAGES",
    "PROBLEM_TYPES",
    "ROLES",
    "ROLE_LABELS",
    "STATUS_LABELS",
    "STICKER_PACKAGES",
    "AgeCondition",
    "ApproveRequest",
    "AudienceCount",
    "AudienceCountRequest",
    "AuditEntryOut",
    "AuditPage",
    "AuditQuery",
    "AuditVerifyResult",
    "CalendarEntry",
    "CalendarOut",
    "CardItem",
    "ChoiceCondition",
    "Created",
    "DashboardCounters",
    "DashboardOut",
    "DayCount",
    "DeliveryContent",
    "DeliveryDetail",
    "DeliveryEvent",
    "DeliveryPage",
    "DeliveryQuery",
    "DeliverySummary",
    "FourEyes",
    "Health",
    "ImageItem",
    "LinkButton",
    "LinkDomains",
    "LinkDomainsUpdate",
    "MailTally",
    "Me",
    "MediaOut",
    "MessageItem",
    "OccurrenceOut",
    "Option",
    "Problem",
    "ProblemType",
    "Question",
    "Quota",
    "RecurrenceRule",
    "RejectRequest",
    "SegmentFilter",
    "SeriesAction",
    "SeriesIn",
    "SeriesList",
    "SeriesOut",
    "StaffList",
    "StaffOut",
    "StaffUpdate",
    "StatisticsCell",
    "StatisticsOut",
    "StatisticsQuestion",
    "Status",
    "StickerItem",
    "SurveyDefinition",
    "SurveyOut",
    "SurveyUpdate",
    "SurveyUpdated",
    "TemplateContent",
    "TemplateIn",
    "TemplateList",
    "TemplateOut",
    "TestRecipientCode",
    "TestRecipients",
    "TestSendResult",
    "audit_action_label",
    "audit_actions_matching",
    "audit_target_label",
    "default_stickers",
    "describe",
    "occurrences",
]

API_VERSION = "v1"
ROLES = ("admin", "author", "approver", "auditor", "counter", "kiosk", "board")
Role = Literal["admin", "author", "approver", "auditor", "counter", "kiosk", "board"]

# Stable problem `type` URIs: clients branch on these, never on the Japanese text.
ProblemType = Literal[
    "urn:kairan:problem:bad-request",  # body is not JSON, or a query parameter is malformed
    "urn:kairan:problem:validation",  # a field does not validate (see `field`)
    "urn:kairan:problem:forbidden",  # no OS identity, not on the roster, inactive, or no role
    "urn:kairan:problem:four-eyes",  # approver is the delivery's author
    "urn:kairan:problem:not-found",
    "urn:kairan:problem:method-not-allowed",
    "urn:kairan:problem:conflict",  # the action does not fit the current state
    "urn:kairan:problem:payload-too-large",
    "urn:kairan:problem:unsupported-media-type",
    "urn:kairan:problem:request-timeout",  # the body did not arrive in time (408)
    "urn:kairan:problem:too-many-connections",  # per-user connection limit (503)
    "urn:kairan:problem:line-unavailable",  # LINE could not be reached (test send)
    "urn:kairan:problem:internal",  # a bug: reported, never expected
]
PROBLEM_TYPES: tuple[str, ...] = ProblemType.__args__  # type: ignore[attr-defined]


class _Out(BaseModel):
    """Response shapes: tolerant of fields a newer daemon adds (the TUI may be older)."""

    model_config = ConfigDict(extra="ignore")


class _In(BaseModel):
    """Request shapes: unknown fields are refused so a typo is never silently ignored."""

    model_config = ConfigDict(extra="forbid")


# -- errors ------------------------------------------------------------------------------


class Problem(_Out):
    """RFC 9457 problem details (`Content-Type: application/problem+json`)."""

    type: str
    title: str
    """Japanese, short, for staff (e.g. 権限がありません)."""
    status: int
    detail: str = ""
    """Japanese, one or two sentences saying what to do."""
    field: str | None = None
    """Dotted path of the offending field (e.g. `messages.0`), or a query parameter name."""
    code: str | None = None
    """Finer machine code where useful (e.g. the delivery service's error code)."""


# -- identity ----------------------------------------------------------------------------


class FourEyes(_Out):
    self_approval_threshold: int
    """Deliveries to fewer recipients than this may be approved by their author (0 = never)."""
    relaxed: bool
    """True when the threshold is above 0: the TUI shows that four eyes is relaxed."""


class Me(_Out):
    username: str
    display_name: str
    roles: list[Role]
    training_mode: bool
    """The LINE endpoint is the simulator: every screen shows 訓練モード."""
    four_eyes: FourEyes
    allowed: list[str]
    """Names of the routes this caller may use (see docs/api.md), to grey out menu entries."""


# -- dashboard ---------------------------------------------------------------------------


class DayCount(_Out):
    day: dt.date
    """A Japan-time calendar day."""
    follows: int
    unfollows: int


class Quota(_Out):
    type: str
    """LINE's quota type: "limited" or "none" (unlimited)."""
    limit: int | None
    """Messages per month (None when unlimited)."""
    used: int
    checked_at: dt.datetime
    """When the daemon last asked LINE (cached for a few minutes)."""


class Health(_Out):
    """稼働状況. The tunnel has no figure of its own: `last_webhook_at` shows whether LINE's
    requests arrive through it."""

    last_webhook_at: dt.datetime | None
    """Last webhook accepted from LINE (None: never)."""
    line_reachable: bool | None
    """Last call to the Messaging API succeeded (None: not called yet)."""
    line_last_ok_at: dt.datetime | None
    line_last_error: str | None
    tls_not_after: dt.datetime | None
    """Expiry of the webhook certificate, when one is installed."""
    backup_last_ok_at: dt.datetime | None = None
    """Last successful backup (`kairanctl backup create`), when backups are set up."""


class DashboardCounters(_Out):
    """The figures that change while the dashboard is open (also sent as an SSE event)."""

    friends: int
    """Residents following the account now."""
    registered: int
    """Residents who completed the survey."""
    deliveries_today: int
    """Deliveries started today (Japan time)."""
    messages_sent_today: int
    """Recipients reached today (LINE counts one message per recipient)."""
    active_deliveries: int
    """Deliveries approved, scheduled or sending."""
    pending_approval: int
    registered_mail: str | None = None
    """Mail subscribers registered now, counted apart from `registered` (LINE), as
    shown: the count, or "<k" below config.privacy.small_cell_threshold; None when the mail
    channel is off and has nobody. Never an address."""


class DashboardOut(DashboardCounters):
    days: list[DayCount]
    """The last 7 Japan-time days, oldest first, including today."""
    quota: Quota | None
    """None when LINE could not be asked."""
    health: Health
    training_mode: bool


# -- statistics (W4) ---------------------------------------------------------------------


class StatisticsCell(_Out):
    code: str
    """Option code; for year questions the decade ("1980s"); "_none" for 回答なし."""
    label: str
    count: int | None
    """None when suppressed (a small cell, or one that would reveal a small cell)."""
    display: str
    """What to show: the number, or "<10" (k = config.privacy.small_cell_threshold)."""


class StatisticsQuestion(_Out):
    code: str
    title: str
    kind: str
    cells: list[StatisticsCell]


class StatisticsOut(_Out):
    survey_version: int
    registered_display: str
    """Registered residents (the population the cells count), suppressed like a cell."""
    registered_mail_display: str | None = None
    """Registered mail subscribers, suppressed like a cell; None when the mail
    channel is off and has nobody."""
    channel: str = "line"
    """Whose answers the cells count: "line" (LINE residents) or "mail" (mail subscribers,
    who answer the same survey by mail)."""
    threshold: int
    questions: list[StatisticsQuestion]


# -- segments ----------------------------------------------------------------------------


class AudienceCountRequest(_In):
    segment: SegmentFilter


class AudienceCount(_Out):
    count: int
    """Residents the segment selects now (registered, deliveries not stopped)."""
    small: bool
    """True when below the small-cell threshold: the TUI may warn before sending."""
    line: int | None = None
    """Of `count`, residents reached by LINE (None from an older daemon)."""
    mail: int = 0
    """Of `count`, subscribers reached by e-mail. Counts only, never addresses."""


# -- deliveries --------------------------------------------------------------------------


class DeliveryQuery(_In):
    status: str | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    offset: Annotated[int, Field(ge=0)] = 0


class MailTally(_Out):
    """A delivery's mail channel in counts: never an address."""

    recipients: int
    sent: int
    failed: int
    unconfirmed: int
    """Handed to the relay without a final reply: never resent, for a person to check."""


class DeliverySummary(_Out):
    id: int
    title: str
    status: str
    urgent: bool
    author: str
    approver: str | None
    scheduled_at: dt.datetime | None
    created_at: dt.datetime | None
    recipient_count: int | None
    """Recipients on every channel (LINE residents plus mail subscribers)."""
    sent_count: int
    failed_count: int
    sent_back: bool = False
    """A draft an approver sent back (差し戻し) with a comment, not yet submitted again."""
    mail: MailTally | None = None
    """The mail channel's share of the counts above (None: nobody by mail)."""


class DeliveryPage(_Out):
    items: list[DeliverySummary]
    limit: int
    offset: int
    next_offset: int | None
    """Pass as `offset` for the next page; None on the last page."""


class DeliveryDetail(DeliverySummary):
    content: DeliveryContent
    status_reason: str | None = None
    reject_comment: str | None = None
    submitted_at: dt.datetime | None = None
    approved_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    batches_total: int = 0
    batches_done: int = 0
    """Batches settled (sent, failed, flagged or cancelled)."""
    progress: float = 0.0
    """0.0 – 1.0: share of batches settled once the delivery is frozen into batches."""
    quota_confirmed: bool = False
    can_self_approve: bool = False
    """Four eyes is relaxed for this delivery (recipients below the threshold)."""
    links: list[str] = []
    """Every URL the messages carry, in full (link buttons and addresses in text): the
    approver reads each one before approving."""
    series_id: int | None = None
    """The recurring series this delivery is an occurrence of."""


class ApproveRequest(_In):
    """Body of approve and resume (may be empty)."""

    confirm_over_quota: bool = False
    """Approve although LINE's remaining monthly quota is smaller than the audience (the
    daemon answers 409 `quota_exceeded` otherwise)."""


class RejectRequest(_In):
    comment: Annotated[str, Field(min_length=1, max_length=2000)]
    """Why the delivery goes back to its author (差し戻し理由)."""


class TestSendResult(_Out):
    sent: int
    """Test recipients the message was pushed to."""


class Created(_Out):
    id: int


class DeliveryEvent(_Out):
    """SSE `delivery` event: progress of one delivery."""

    id: int
    status: str
    recipient_count: int | None
    sent_count: int
    failed_count: int
    progress: float
    mail: MailTally | None = None


# -- test recipients ---------------------------------------------------------------------


class TestRecipientCode(_Out):
    code: str
    """e.g. KAIRAN-123456: the staff member sends it from their own LINE to the account."""
    expires_at: dt.datetime


class TestRecipients(_Out):
    count: int
    """LINE accounts registered as this staff member's test recipients."""


# -- survey ------------------------------------------------------------------------------


class SurveyOut(_Out):
    version: int
    definition: SurveyDefinition


class SurveyUpdate(_In):
    definition: SurveyDefinition
    based_on_version: int | None = None
    """The version the editor started from; a newer current version → 409 (lost update)."""


class SurveyUpdated(_Out):
    version: int


# -- staff roster ------------------------------------------------------------------------


class StaffOut(_Out):
    username: str
    display_name: str
    roles: list[Role]
    handles_personal_data: bool
    active: bool


class StaffList(_Out):
    items: list[StaffOut]


class StaffUpdate(_In):
    """PUT /v1/staff/{username}: create or replace a roster entry."""

    display_name: Annotated[str, Field(min_length=1, max_length=100)]
    roles: Annotated[list[Role], Field(max_length=7)]
    handles_personal_data: bool = True
    active: bool = True


# -- audit -------------------------------------------------------------------------------


class AuditQuery(_In):
    actor: Annotated[str, Field(max_length=100)] | None = None
    action: Annotated[str, Field(max_length=100)] | None = None
    """Exact action, or a prefix ending in "." or "*" (e.g. `api.deliveries.`)."""
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_seq: Annotated[int, Field(ge=1)] | None = None
    """Cursor: entries with a smaller sequence number (newest first)."""
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class AuditEntryOut(_Out):
    seq: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]


class AuditPage(_Out):
    items: list[AuditEntryOut]
    next_before_seq: int | None
    """Pass as `before_seq` for the next (older) page; None when there is none."""


class AuditVerifyResult(_Out):
    ok: bool
    entries: int
    checkpoints: int
    first_broken_seq: int | None
    reason: str
    head_hash: str


# -- images, links, templates, recurring deliveries ---------------------------


class MediaOut(_Out):
    """POST /v1/media (body: the JPEG or PNG bytes; header X-File-Name, URL-encoded)."""

    id: str
    """Use as `media` of an image or `image` of a card."""
    content_type: str
    width: int
    height: int
    bytes: int
    """Size of the picture as LINE receives it (metadata stripped, re-encoded, <= 10 MB)."""
    preview_bytes: int
    """Size of the generated preview (<= 1 MB)."""
    file_name: str


class LinkDomains(_Out):
    configured: list[str]
    """From the configuration file (links.allowed_domains)."""
    added: list[str]
    """Added by an admin (PUT /v1/link-domains)."""


class LinkDomainsUpdate(_In):
    domains: Annotated[
        list[Annotated[str, Field(min_length=3, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")]],
        Field(max_length=200),
    ]
    """The complete list of admin-added domains (replaces the previous one)."""


class TemplateContent(_In):
    title: Annotated[str, Field(min_length=1, max_length=100)]
    messages: Annotated[list[MessageItem], Field(min_length=1, max_length=MAX_MESSAGES)]
    notification_disabled: bool = False


class TemplateIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=60)]
    content: TemplateContent
    based_on_version: int | None = None
    """PUT only: the version the editor started from; a newer one → 409 (lost update)."""


class TemplateOut(_Out):
    id: int
    name: str
    content: TemplateContent
    version: int
    updated_by: str
    updated_at: dt.datetime


class TemplateList(_Out):
    items: list[TemplateOut]


class SeriesIn(_In):
    """A recurring delivery: the content (its scheduled_at is ignored) and the rule."""

    content: DeliveryContent
    rule: RecurrenceRule


class OccurrenceOut(_Out):
    at: dt.datetime
    outcome: str
    """created | skipped_late | skipped_paused"""
    delivery_id: int | None
    status: str | None
    """The occurrence's delivery status (sent, failed...)."""


class SeriesChangeOut(_Out):
    """A change to an approved series awaiting its own approval: the series keeps
    sending as approved until another approver accepts it."""

    title: str
    content: DeliveryContent
    rule: RecurrenceRule
    rule_text: str
    next_occurrences: list[dt.datetime]
    """The next sends under the changed rule (what the approver approves)."""
    proposed_by: str
    proposed_at: dt.datetime
    links: list[str] = []


class SeriesOut(_Out):
    id: int
    title: str
    status: str
    """draft | pending_approval | active | paused | ended | cancelled"""
    status_reason: str | None = None
    content: DeliveryContent
    rule: RecurrenceRule
    rule_text: str
    """The rule in Japanese (e.g. 毎月 第2・第4 水曜 9:00（祝日は送らない…）)."""
    next_occurrences: list[dt.datetime]
    """The next sends (up to 5): what the approver approves."""
    author: str
    approver: str | None
    reject_comment: str | None = None
    occurrences_done: int
    history: list[OccurrenceOut] = []
    links: list[str] = []
    pending_change: SeriesChangeOut | None = None
    """Set while a change to this active or paused series awaits approval."""


class SeriesList(_Out):
    items: list[SeriesOut]


class SeriesAction(_In):
    """Body of series submit/approve/pause/resume/end (reject uses RejectRequest)."""

    comment: Annotated[str, Field(max_length=2000)] = ""


class CalendarEntry(_Out):
    at: dt.datetime
    title: str
    kind: Literal["delivery", "series"]
    id: int
    """Delivery id or series id."""
    status: str


class CalendarOut(_Out):
    items: list[CalendarEntry]
    """Upcoming sends in time order: scheduled deliveries and the next occurrences of active
    and pending series."""


# -- events (SSE) ------------------------------------------------------------------------

EventName = Literal["dashboard", "delivery", "ping"]
"""GET /v1/events (text/event-stream): `event: dashboard` carries DashboardCounters,
`event: delivery` carries DeliveryEvent; a comment line every 15 s keeps the stream open."""


class HandlingReportQuery(_In):
    """GET /v1/reports/handling: the period of the handling report (both days included)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    date_from: dt.date = Field(alias="from")
    date_to: dt.date = Field(alias="to")


class HandlingReportOut(_Out):
    """The handling report (S15) as issued: signed Markdown and signed PDF (base64)."""

    period_from: dt.date
    period_to: dt.date
    author: str
    markdown: str
    pdf_base64: str


# -- window reservations: shapes live in their own module, re-exported here ----------

from kairand.api.reservation_schema import *  # noqa: E402, F403
from kairand.api.reservation_schema import __all__ as _reservation_names  # noqa: E402

__all__ += _reservation_names

# -- same-day queue: shapes live in their own module, re-exported here ---------------

from kairand.api.queue_schema import *  # noqa: E402, F403
from kairand.api.queue_schema import __all__ as _queue_names  # noqa: E402

__all__ += _queue_names
# -- programs, districts, institutions, alerts -----------------------------------


class ProgramOut(_Out):
    code: str
    name: str
    is_default: bool
    annual: bool
    """Annual registration (K2): destroyed at the end of March."""
    registered: str
    """Registered LINE subscribers, aggregate; below the small-cell threshold shown as "<N"."""
    registered_mail: str = "0"
    """Registered mail subscribers, aggregate, small cells shown as "<N"."""
    districts: dict[str, str] = {}
    """Registered LINE subscribers per school district (district name -> count or "<N")."""
    districts_mail: dict[str, str] = {}
    """Registered mail subscribers per school district, the same way (empty when the program
    has no member by mail)."""
    definition: dict[str, Any] = {}
    """The program's definition as stored (empty for the default program), so staff can
    edit it and raise its consent version (see ProgramPut)."""


class ProgramList(_Out):
    items: list[ProgramOut]


class ProgramPut(_In):
    definition: dict[str, Any]
    """A program definition (see docs/programs.md): name, description, purpose_notice,
    consent_version, completion, district_question, questions, annual."""


class DistrictOut(_Out):
    code: str
    name: str
    kana: str
    junior_high: str
    junior_high_name: str


class DistrictList(_Out):
    items: list[DistrictOut]


class DistrictImport(_In):
    csv: Annotated[str, Field(min_length=1, max_length=1_000_000)]
    """UTF-8 CSV: code,name,kana,junior_high,junior_high_name (header line first)."""


class DistrictImportResult(_Out):
    added: int
    updated: int
    retired: int


INSTITUTION_KIND_LABELS = {
    "kodomoen": "こども園",
    "kindergarten": "幼稚園",
    "nursery": "保育園",
    "school": "学校",
    "board": "教育委員会",
    "agency": "関係機関",
}


class InstitutionOut(_Out):
    code: str
    name: str
    kind: str
    all_districts: bool
    districts: list[str]


class InstitutionList(_Out):
    items: list[InstitutionOut]


class InstitutionPut(_In):
    name: Annotated[str, Field(min_length=1, max_length=40)]
    kind: Literal["kodomoen", "kindergarten", "nursery", "school", "board", "agency"]
    all_districts: bool = False
    districts: list[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]] = []


class InstitutionStaff(_In):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    head: bool = False
    """The institution's head (園長・校長): notified at once of its alerts."""


class TemplateFieldOut(_Out):
    code: str
    label: str
    kind: str
    required: bool
    max_length: int
    child: bool
    hint: str


class AlertTemplateOut(_Out):
    id: int
    program: str
    name: str
    title: str
    status: Literal["draft", "approved", "retired"]
    created_by: str
    approved_by: str | None
    fields: list[TemplateFieldOut]
    footer: str
    replaces: int | None = None
    """The template this one revises: a draft with `replaces` is a revision (修正案), and
    approving it retires that template."""


class AlertTemplateList(_Out):
    items: list[AlertTemplateOut]


class AlertTemplateCreate(_In):
    program: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,15}$")]
    name: Annotated[str, Field(min_length=1, max_length=40)]
    definition: dict[str, Any]
    """title, fields [{code, label, kind text|datetime|place, required, max_length, child,
    hint}], footer."""
    replaces: int | None = None
    """A revision of this template (same program, approved or draft, not retired, and no other
    open revision): the original stays usable until the revision is approved."""


class GuardianConsentIn(_In):
    by: Annotated[str, Field(min_length=1, max_length=60)]
    """Who consented, as a role (e.g. 被害児童の保護者（母））."""
    at: dt.datetime


class AlertSend(_In):
    template_id: int
    institution: Annotated[str, Field(min_length=1, max_length=64)]
    districts: Annotated[list[Annotated[str, Field(max_length=32)]], Field(min_length=1)]
    values: dict[str, Annotated[str, Field(max_length=1000)]]
    guardian_consent: GuardianConsentIn | None = None


class AlertFollowUp(_In):
    kind: Literal["correction", "all_clear"]
    body: Annotated[str, Field(min_length=1, max_length=1000)]


class AlertSent(_Out):
    delivery_id: int
    text: str
    notified: int
    """Staff notified at once (approvers and the institution's heads)."""


class AlertOut(_Out):
    delivery_id: int
    template_id: int
    institution: str
    districts: list[str]
    kind: Literal["alert", "correction", "all_clear"]
    follows: int | None
    guardian_consent: bool
    created_at: dt.datetime


class AlertList(_Out):
    items: list[AlertOut]


class MyInstitutions(_Out):
    items: list[InstitutionOut]


class AlertEvent(_Out):
    """SSE `alert` event: an alert was just sent; streamed at once to approvers and
    to the heads of the sending institution."""

    delivery_id: int
    kind: Literal["alert", "correction", "all_clear"]
    title: str
    institution_name: str
    districts: int
    created_at: dt.datetime

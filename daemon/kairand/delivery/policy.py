"""Four eyes (S7), pure: who counts as a delivery's writer, and when a writer may approve it.

A delivery's writers are its author and everyone who edited its content. A writer may approve
it only when it reaches fewer recipients than the configured self-approval threshold (0 means
never); the audience is counted again at approval (the survey answers may have changed since
the draft was written). kairand.delivery.service.four_eyes reads the facts and applies this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

WRITING_ACTIONS = ("delivery.create", "delivery.update")
"""Audit actions (written by kairand.delivery.service) that make someone a delivery's writer."""

SERIES_WRITING_ACTIONS = ("series.create", "series.update")
"""Audit actions (written by kairand.delivery.series) that make someone a series' writer. A
series has no self-approval threshold: its writers never approve it."""


def writers(author: str, editors: Iterable[str]) -> frozenset[str]:
    """The author and everyone who edited the content."""
    return frozenset({author, *editors})


def can_self_approve(recipient_count: int | None, threshold: int) -> bool:
    """A writer may approve their own delivery only when it reaches fewer recipients than
    THRESHOLD (0 = never; an unknown audience = never)."""
    return threshold > 0 and recipient_count is not None and recipient_count < threshold


def needs_audience(approver: str, writer_names: frozenset[str], threshold: int) -> bool:
    """Whether the audience must be counted to decide (only for a writer, when self-approval
    is possible at all)."""
    return approver in writer_names and threshold > 0


@dataclass(frozen=True)
class FourEyes:
    """The decision on one approval."""

    allowed: bool
    self_approval: bool
    """The approver is one of the writers (allowed only under the threshold)."""
    recipients: int | None = None
    """The audience counted at approval (only when it mattered)."""

    @property
    def audit_note(self) -> str | None:
        """What the access log records: "refused", "relaxed", or nothing (another person)."""
        if not self.self_approval:
            return None
        return "relaxed" if self.allowed else "refused"


def decide(
    approver: str, writer_names: frozenset[str], threshold: int, recipients: int | None
) -> FourEyes:
    """Four eyes for APPROVER; RECIPIENTS is the audience counted now (None if not counted)."""
    if approver not in writer_names:
        return FourEyes(allowed=True, self_approval=False)
    return FourEyes(
        allowed=can_self_approve(recipients, threshold), self_approval=True, recipients=recipients
    )

"""Plain value types the store returns and pure cores consume. Bottom layer: no I/O, imports
nothing of kairand, so `store/` can build them without importing a feature package and the
pure cores can read them without importing the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ResidentFacts"]


@dataclass(frozen=True)
class ResidentFacts:
    """What evaluation needs to know about one resident (no user id, no answer values)."""

    resident_id: int
    followed_at: int
    registered_at: int | None
    last_interaction_at: int
    deliveries_stopped: bool = False
    first_answer_at: Mapping[str, int] = field(default_factory=dict)
    """Per question (only those with a rule): when its oldest stored answer was given."""

    @property
    def registration_anchor(self) -> int:
        """When the registration began: completing the survey, else following."""
        return self.registered_at if self.registered_at is not None else self.followed_at

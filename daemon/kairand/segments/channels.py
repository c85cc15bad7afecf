"""A mail subscriber's answers as the facts a segment filter looks at (pure).

Mail subscribers answer the same survey as LINE residents (kairand.mail.dialogue), so the same
filter selects them: `kairand.segments.model.matches` is applied to these facts. They are
members of the default program only (registration by mail asks the city survey).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kairand.conversation.survey import SurveyDefinition
from kairand.segments.model import ResidentFacts


def mail_facts(
    answers: Mapping[str, Sequence[str]], survey: SurveyDefinition | None
) -> ResidentFacts:
    """The facts of a registered mail subscriber with ANSWERS (question code -> values; a
    year is stored as "YYYY" or "YYYY-MM")."""
    choices: dict[str, tuple[str, ...]] = {}
    years: dict[str, int] = {}
    for code, values in answers.items():
        question = survey.question(code) if survey is not None else None
        if question is not None and question.kind in ("year", "year_month"):
            if values and values[0][:4].isdigit():
                years[code] = int(values[0][:4])
        else:
            choices[code] = tuple(values)
    return ResidentFacts(registered=True, deliveries_stopped=False, answers=choices, years=years)

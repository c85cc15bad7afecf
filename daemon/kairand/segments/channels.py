"""A mail subscriber's answers as the facts a segment filter looks at (pure).

Mail subscribers answer the same survey as LINE residents (kairand.mail.dialogue), so the same
filter selects them: `kairand.segments.model.matches` is applied to these facts. A mail
subscriber who joined a program (e.g. 子ども安全情報, kairand.mail.programs) is selected by the
program's segments through `program_facts`: its school districts and its answers to the
program's further questions, exactly as a LINE member's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from kairand.conversation.survey import SurveyDefinition
from kairand.segments.model import ResidentFacts


def program_facts(
    answers: Mapping[str, Sequence[str]],
    year_questions: Collection[str],
    programs: Collection[str] = (),
) -> ResidentFacts:
    """The facts of a registered subscriber (or program member) with ANSWERS (question code ->
    values; a year is stored as "YYYY" or "YYYY-MM" for the codes in YEAR_QUESTIONS), a
    registered member of the non-default PROGRAMS."""
    choices: dict[str, tuple[str, ...]] = {}
    years: dict[str, int] = {}
    for code, values in answers.items():
        if code in year_questions:
            if values and values[0][:4].isdigit():
                years[code] = int(values[0][:4])
        else:
            choices[code] = tuple(values)
    return ResidentFacts(
        registered=True,
        deliveries_stopped=False,
        answers=choices,
        years=years,
        programs=frozenset(programs),
    )


def mail_facts(
    answers: Mapping[str, Sequence[str]], survey: SurveyDefinition | None
) -> ResidentFacts:
    """The facts of a registered mail subscriber of the default program (the city survey)."""
    years = (
        {q.code for q in survey.questions if q.kind in ("year", "year_month")}
        if survey is not None
        else set()
    )
    return program_facts(answers, years)

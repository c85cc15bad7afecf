"""An in-memory bitmap index of the segment facets, for audience counts in about a millisecond
at any filter shape (pure: it holds data and answers counts; the store feeds it rows).

One compressed bitmap (roaring) of resident ids per facet value: the eligible residents, each
option bit of each choice slot, each year of each year slot, and each program's registered
members. A filter is the eligible bitmap (for a program's delivery: its members bitmap)
intersected with, per condition, the union of the bitmaps its options or birth years select.

The index mirrors `segment_facets` exactly (the table the facet plan of the SQL compiler reads)
and answers only what that plan covers: a condition the facet map cannot express (a mixed
question, an option beyond the bit limit, a slot beyond the columns) makes `count` return
None, and the caller counts with SQL. The store keeps it current through the change log that
triggers write in the same transaction as the answers (see kairand.store.segments); a
property test compares it with the SQL after random answer changes, purges and rebuilds.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from pyroaring import BitMap

from kairand.segments.compiler import C_SLOTS, DEFAULT_PROGRAM, MAX_BITS, Y_SLOTS, FacetMap
from kairand.segments.model import AgeCondition, ChoiceCondition, Condition, SegmentFilter

FacetRow = tuple[int, int, Sequence[int], Sequence[int | None]]
"""(resident id, eligible 0/1, c0..c7 masks, y0..y3 years or None)."""


def _groups(ids: Sequence[int], values: Sequence[Any]) -> dict[Any, list[int]]:
    """IDS grouped by the value in VALUES at the same position (0 and None groups dropped)."""
    groups: defaultdict[Any, list[int]] = defaultdict(list)
    for resident, value in zip(ids, values, strict=True):
        groups[value].append(resident)
    groups.pop(0, None)
    groups.pop(None, None)
    return groups


class NotCovered(Exception):
    """The filter needs something the facet columns do not hold: count with SQL instead."""


@dataclass
class AudienceIndex:
    """Bitmaps of resident ids by facet value. `applied` is the change-log position the
    bitmaps reflect (-1: never built)."""

    eligible: BitMap = field(default_factory=BitMap)
    choices: dict[tuple[int, int], BitMap] = field(default_factory=dict)
    """(choice slot, bit) -> residents with that bit set."""
    years: dict[tuple[int, int], BitMap] = field(default_factory=dict)
    """(year slot, year) -> residents whose slot holds that year."""
    programs: dict[str, BitMap] = field(default_factory=dict)
    """Program code -> its registered members (kairand.segments.compiler.MEMBERS): the set
    that replaces `eligible` for a delivery of that program."""
    applied: int = -1

    # -- building and updating -----------------------------------------------------------

    def clear(self) -> None:
        self.eligible = BitMap()
        self.choices = {}
        self.years = {}
        self.programs = {}
        self.applied = -1

    def load(
        self,
        chunks: Iterable[Sequence[Sequence[Any]]],
        c_slots: Sequence[int],
        y_slots: Sequence[int],
        applied: int,
        memberships: Iterable[Sequence[tuple[str, int]]] = (),
    ) -> None:
        """Replace the whole index with every facet row and every registered program
        membership (MEMBERSHIPS: chunks of (program, resident id)), reflecting log position
        APPLIED.

        CHUNKS: lists of rows (resident id, eligible 0/1, the masks of the choice slots
        C_SLOTS, the years of the year slots Y_SLOTS, in that order); slots not listed hold
        nothing. Each chunk is grouped by value column by column, and each group goes into
        its bitmaps in one bulk update: about one Python step per resident and slot, instead
        of one per resident, slot and bit (and only the chunk is held as Python objects)."""
        eligible = BitMap()
        choices: dict[tuple[int, int], BitMap] = {}
        years: dict[tuple[int, int], BitMap] = {}
        first_year = 2 + len(c_slots)
        for chunk in chunks:
            if not chunk:
                continue
            columns = list(zip(*chunk, strict=True))
            ids = columns[0]
            eligible.update(compress(ids, columns[1]))
            for offset, slot in enumerate(c_slots):
                for mask, members in _groups(ids, columns[2 + offset]).items():
                    while mask:
                        low = mask & -mask
                        key = (slot, low.bit_length() - 1)
                        bitmap = choices.get(key)
                        if bitmap is None:
                            bitmap = choices[key] = BitMap()
                        bitmap.update(members)
                        mask ^= low
            for offset, slot in enumerate(y_slots):
                for year, members in _groups(ids, columns[first_year + offset]).items():
                    if year is None:
                        continue
                    key = (slot, int(year))
                    bitmap = years.get(key)
                    if bitmap is None:
                        bitmap = years[key] = BitMap()
                    bitmap.update(members)
        programs: dict[str, BitMap] = {}
        for member_chunk in memberships:
            for program, residents in _groups(
                [resident for _, resident in member_chunk],
                [program for program, _ in member_chunk],
            ).items():
                bitmap = programs.get(program)
                if bitmap is None:
                    bitmap = programs[program] = BitMap()
                bitmap.update(residents)
        self.eligible = eligible
        self.choices = choices
        self.years = years
        self.programs = programs
        self.applied = applied

    def update(self, resident: int, row: FacetRow | None, programs: Iterable[str] = ()) -> None:
        """Make RESIDENT's bits equal ROW (None: the resident has no facet row any more) and
        their memberships equal PROGRAMS (the programs they are a registered member of)."""
        self.eligible.discard(resident)
        for bitmap in self.choices.values():
            bitmap.discard(resident)
        for bitmap in self.years.values():
            bitmap.discard(resident)
        for bitmap in self.programs.values():
            bitmap.discard(resident)
        for program in programs:
            self.programs.setdefault(program, BitMap()).add(resident)
        if row is None:
            return
        _, is_eligible, masks, slot_years = row
        if is_eligible:
            self.eligible.add(resident)
        for slot, mask in enumerate(masks):
            while mask:
                low = mask & -mask
                self.choices.setdefault((slot, low.bit_length() - 1), BitMap()).add(resident)
                mask ^= low
        for slot, year in enumerate(slot_years):
            if year is not None:
                self.years.setdefault((slot, year), BitMap()).add(resident)

    # -- answering -----------------------------------------------------------------------

    def count(self, segment: SegmentFilter, on: dt.date, facets: FacetMap) -> int:
        """How many residents SEGMENT selects on send date ON; NotCovered when the facet map
        cannot express a condition (the SQL answers plan then counts)."""
        base, selected = self._parts(segment, on, facets)
        if selected is None:
            return len(base)
        if not selected[0]:
            return 0
        result = selected[0] & base
        for bitmap in selected[1:-1]:
            result &= bitmap
        if len(selected) == 1:
            return len(result)
        return result.intersection_cardinality(selected[-1])

    def select(self, segment: SegmentFilter, on: dt.date, facets: FacetMap) -> BitMap:
        """The residents SEGMENT selects on send date ON (a new bitmap, the ids a delivery
        freezes); NotCovered as for `count`."""
        base, selected = self._parts(segment, on, facets)
        if selected is None:
            return BitMap(base)
        result = selected[0] & base
        for bitmap in selected[1:]:
            result &= bitmap
        return result

    def _parts(
        self, segment: SegmentFilter, on: dt.date, facets: FacetMap
    ) -> tuple[BitMap, list[BitMap] | None]:
        """SEGMENT's base set and its conditions' sets, smallest first (None: no condition)."""
        # The default program's audience is the eligible residents; another program's is
        # its registered members (kairand.segments.compiler._base), conditions alike.
        if segment.program == DEFAULT_PROGRAM:
            base = self.eligible
        else:
            base = self.programs.get(segment.program, BitMap())
        if segment.all_registered or not segment.conditions:
            return base, None
        selected = [self._condition(cond, on, facets) for cond in segment.conditions]
        selected.sort(key=len)
        return base, selected

    def _condition(self, cond: Condition, on: dt.date, facets: FacetMap) -> BitMap:
        slot = facets.slots.get(cond.question)
        if slot is None:
            return BitMap()  # nobody ever answered this question
        kind, index, mixed = slot
        if mixed:
            raise NotCovered
        if isinstance(cond, ChoiceCondition):
            if kind != "c" or index >= C_SLOTS:
                raise NotCovered
            parts = []
            for code in cond.any_of:
                bit = facets.bits.get((cond.question, code))
                if bit is None:
                    continue  # nobody ever chose it
                if bit >= MAX_BITS:
                    raise NotCovered
                parts.append(self.choices.get((index, bit), BitMap()))
            return BitMap.union(*parts) if parts else BitMap()
        assert isinstance(cond, AgeCondition)
        if kind != "y" or index >= Y_SLOTS:
            raise NotCovered
        low, high = cond.birth_years(on.year)
        parts = [
            bitmap for (s, year), bitmap in self.years.items() if s == index and low <= year <= high
        ]
        return BitMap.union(*parts) if parts else BitMap()

    # -- persisting (so a restart does not rebuild from every row) ------------------------

    def dump(self) -> list[tuple[str, bytes]]:
        """Every bitmap in the portable roaring serialization, keyed by what it holds."""
        out = [("e", self.eligible.serialize())]
        out.extend((f"c:{slot}:{bit}", b.serialize()) for (slot, bit), b in self.choices.items())
        out.extend((f"y:{slot}:{year}", b.serialize()) for (slot, year), b in self.years.items())
        out.extend((f"p:{program}", b.serialize()) for program, b in self.programs.items())
        return out

    def restore(self, items: Iterable[tuple[str, bytes]], applied: int) -> None:
        """Replace the index with what `dump` wrote, reflecting log position APPLIED."""
        self.clear()
        for key, data in items:
            bitmap = BitMap.deserialize(data)
            kind, *rest = key.split(":")
            if kind == "p":
                self.programs[key[2:]] = bitmap  # a program code may hold ':'
            elif kind == "e":
                self.eligible = bitmap
            elif kind == "c":
                self.choices[(int(rest[0]), int(rest[1]))] = bitmap
            else:
                self.years[(int(rest[0]), int(rest[1]))] = bitmap
        self.applied = applied

    def memory_bytes(self) -> int:
        """Serialized size of every bitmap: what the index holds in memory, roughly."""
        total = 0
        bitmaps = (self.eligible, *self.choices.values(), *self.years.values())
        for bitmap in (*bitmaps, *self.programs.values()):
            total += len(bitmap.serialize())
        return total

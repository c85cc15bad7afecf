"""The audit hash chain (S8): any edit, deletion or reordering is detected at its place."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from kairand.audit.chain import GENESIS, AuditEntry, StoredEntry, link, verify


def build(n: int) -> list[StoredEntry]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        entry = AuditEntry(1_700_000_000_000 + seq, f"staff{seq % 3}", "delivery.approve", "ok")
        digest = link(prev, seq, entry)
        rows.append(StoredEntry(seq, entry, prev, digest))
        prev = digest
    return rows


def test_intact_chain_verifies() -> None:
    """S8: an untouched chain verifies and reports its head."""
    rows = build(10)
    result = verify(rows)
    assert result.ok and result.entries == 10 and result.head_hash == rows[-1].hash


@given(st.integers(min_value=0, max_value=9), st.sampled_from(["edit", "delete", "swap"]))
def test_any_tampering_names_the_first_broken_entry(index: int, how: str) -> None:
    """S8: editing, deleting or reordering entry N is reported at N."""
    rows = build(10)
    if how == "edit":
        changed = dataclasses.replace(rows[index].entry, actor="intruder")
        rows[index] = dataclasses.replace(rows[index], entry=changed)
    elif how == "delete":
        del rows[index]
    else:
        other = index + 1 if index < 9 else index - 1
        rows[index], rows[other] = rows[other], rows[index]
        index = min(index, other)
    result = verify(rows)
    if how == "delete" and index == 9:
        # Deleting the last entry is only visible against a signed checkpoint of the head.
        assert result.ok and result.head_hash != build(10)[-1].hash
        return
    assert not result.ok
    assert result.first_broken_seq == index + 1

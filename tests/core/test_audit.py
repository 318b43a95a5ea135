"""The audit chain (pure): the documented hash rule, and each kind of tampering found at the
first record it breaks."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from posbridge.audit import (
    GENESIS,
    AuditEntry,
    AuditRecord,
    ChainBreak,
    ChainHead,
    chained,
    parse_anchor,
    refused,
    target,
    verify_chain,
)


def trail(n: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        entry = AuditEntry(actor=f"lane-{seq}", peer="10.0.0.7", action="void",
                           order_no=f"V{seq}", outcome=refused("wrong manager PIN"),
                           detail={"authorised_by": "manager_pin", "amount": 1200 + seq})
        records.append(chained(entry, seq=seq, at=1_796_000_000_000 + seq, prev_hash=prev))
        prev = records[-1].hash
    return records


def test_the_hash_follows_the_documented_rule() -> None:
    entry = AuditEntry(actor="manager:0a1b2c3d", peer="127.0.0.1", action="batch.close",
                       terminal="SN01", detail={"net": {"USD": 1150}, "batch_no": 3})
    rec = chained(entry, seq=1, at=1796171918783, prev_hash=GENESIS)
    # written out by hand from the module docstring: sorted keys, no spaces, ASCII only
    text = ('[1,1796171918783,"manager:0a1b2c3d","127.0.0.1","batch.close",null,"SN01","ok",'
            '{"batch_no":3,"net":{"USD":1150}}]')
    assert rec.hash == hashlib.sha256((GENESIS + text).encode("ascii")).hexdigest()
    assert rec.prev_hash == GENESIS


def test_a_whole_chain_ends_at_its_head() -> None:
    records = trail(5)
    assert verify_chain(records) == ChainHead(5, records[-1].hash)
    assert verify_chain([]) == ChainHead(0, GENESIS)


@pytest.mark.parametrize("field", ["actor", "outcome", "order_no", "at", "detail"])
def test_an_altered_record_breaks_the_chain_at_itself(field: str) -> None:
    records = trail(5)
    value: object = {"amount": 1} if field == "detail" else (
        1 if field == "at" else "ok")
    records[2] = dataclasses.replace(records[2], **{field: value})
    verdict = verify_chain(records)
    assert isinstance(verdict, ChainBreak) and verdict.seq == 3
    assert "changed" in verdict.reason


def test_a_removed_record_breaks_the_chain_at_the_next() -> None:
    records = trail(5)
    del records[2]
    verdict = verify_chain(records)
    assert isinstance(verdict, ChainBreak) and verdict.seq == 4
    assert "record 3 is missing" in str(verdict)
    first_gone = verify_chain(trail(5)[1:])
    assert isinstance(first_gone, ChainBreak) and first_gone.seq == 2


def test_an_inserted_record_breaks_the_chain() -> None:
    records = trail(4)
    forged = chained(AuditEntry(actor="x", peer="y", action="void"), seq=5, at=1,
                     prev_hash=GENESIS)  # not chained to record 4
    verdict = verify_chain([*records, forged])
    assert isinstance(verdict, ChainBreak) and verdict.seq == 5


def test_a_rewritten_or_shortened_chain_fails_its_anchor() -> None:
    records = trail(5)
    anchor = ChainHead(4, records[3].hash)
    assert verify_chain(records, anchor=anchor) == ChainHead(5, records[-1].hash)
    # rewritten from record 2 on, every hash recomputed: whole, but not the anchored one
    rewritten = trail(1)
    for rec in records[1:]:
        entry = AuditEntry(actor="someone-else", peer=rec.peer, action=rec.action)
        rewritten.append(chained(entry, seq=rec.seq, at=rec.at, prev_hash=rewritten[-1].hash))
    assert isinstance(verify_chain(rewritten), ChainHead)
    verdict = verify_chain(rewritten, anchor=anchor)
    assert isinstance(verdict, ChainBreak) and verdict.seq == 4
    cut = verify_chain(records[:3], anchor=anchor)
    assert isinstance(cut, ChainBreak) and "missing" in cut.reason


def test_anchors_and_targets_are_read_strictly() -> None:
    head = ChainHead(12, "ab" * 32)
    assert parse_anchor(str(head)) == head
    for bad in ("12", "x:" + "ab" * 32, "12:" + "AB" * 32, "12:abc"):
        with pytest.raises(ValueError, match="SEQ:HASH"):
            parse_anchor(bad)
    assert target("V-12|a@b") == "V-12|a@b"
    assert target("two words") is None and target(12) is None and target("x" * 65) is None


def test_an_outcome_reason_is_one_bounded_line() -> None:
    text = refused("first line\nsecond " + "x" * 500)
    assert text.startswith("refused: first line second ") and "\n" not in text
    assert len(text) <= len("refused: ") + 200

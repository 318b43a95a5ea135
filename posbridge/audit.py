"""The audit trail's records and their hash chain (pure: no I/O, no clock).

Every privileged action leaves exactly one record, also when it is refused or fails: who
(``actor``: a register's name, ``manager:<session>`` for the manager page, ``cli`` or
``system``), from where (``peer``: the address, ``local`` for the machine itself), when
(``at``, epoch milliseconds UTC), what (``action`` and its target: ``order_no``, ``terminal``,
more in ``detail``) and the ``outcome``: ``ok``, ``refused: <reason>`` or ``failed: <reason>``.
A record never holds a PIN, a token, a key or a signature: a wrong PIN is recorded as a refusal
that says so.

:class:`AuditEntry` is what an action knows about itself; the journal stores it as an
:class:`AuditRecord`, numbered and chained (see :mod:`posbridge.audit_log` for where each kind
of action is recorded).

Chain rule
----------
Records are numbered ``seq`` 1, 2, 3, ... without gaps. Each record's ``hash`` is::

    hash = hex(SHA-256(prev_hash + canonical))

where ``prev_hash`` is the previous record's ``hash`` (:data:`GENESIS`, 64 zeros, for record 1)
and ``canonical`` is the JSON array ``[seq, at, actor, peer, action, order_no, terminal,
outcome, detail]`` written with sorted keys, no spaces and ASCII only (``null`` for an absent
target). Changing, removing or inserting a record therefore breaks the chain at that record or
the next one; :func:`verify_chain` names the first broken record. Whoever can write the file
can also rewrite the whole chain from the changed record on: a head noted elsewhere (``audit
verify`` prints it; pass it back as an anchor) shows that too. Records are never pruned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

#: The ``prev_hash`` of the first record.
GENESIS: Final = "0" * 64
#: Outcomes: "ok", or one of these prefixes and the reason.
OK: Final = "ok"
REFUSED: Final = "refused"
FAILED: Final = "failed"
#: Longest reason kept in an outcome (a reason is one line of the bridge's own words).
REASON_MAX: Final = 200

# Actions other than the register methods (whose action is the method's name).
BATCH_CLOSE: Final = "batch.close"
MANAGER_LOGIN: Final = "manager.login"
TXN_CLOSE: Final = "txn.close"  # the manager page's "close at provider" of an unknown outcome
TXN_REVIEW: Final = "txn.review"  # the manager page's "mark reviewed" of a late approval
CONFIG_RELOAD: Final = "config.reload"
JOURNAL_PRUNE: Final = "journal.prune"

# Actors that are not a register or a manager's session.
CLI: Final = "cli"
SYSTEM: Final = "system"
LOCAL: Final = "local"  # the peer of an action taken on the machine itself


# A target (order number, terminal) taken from a request or form that may be anything is
# recorded only when it has the shape of one.
_TARGET: Final = re.compile(r"[A-Za-z0-9_\-|*@.]{1,64}")


def target(value: object) -> str | None:
    """``value`` when it looks like an order number or a terminal's name, else None."""
    return value if isinstance(value, str) and _TARGET.fullmatch(value) else None


def manager_actor(session_label: str | None) -> str:
    """The actor of the manager page: ``manager:<session label>`` (``manager`` before login)."""
    return f"manager:{session_label}" if session_label else "manager"


def refused(reason: str) -> str:
    return f"{REFUSED}: {_one_line(reason)}"


def failed(reason: str) -> str:
    return f"{FAILED}: {_one_line(reason)}"


def _one_line(reason: str) -> str:
    text = " ".join(reason.split())
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One privileged action as its code knows it, before the journal numbers and chains it.

    ``detail`` holds JSON values only (strings, integers, booleans, null, lists, objects; money
    as integers in minor units, never floats)."""

    actor: str
    peer: str
    action: str
    outcome: str = OK
    order_no: str | None = None
    terminal: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)

    def about(self, *, order_no: str | None = None, terminal: str | None = None,
              **detail: object) -> AuditEntry:
        """This entry with its target filled in (set values win) and ``detail`` added to."""
        return dataclasses.replace(
            self, order_no=order_no if order_no is not None else self.order_no,
            terminal=terminal if terminal is not None else self.terminal,
            detail={**self.detail, **{k: v for k, v in detail.items() if v is not None}})

    def ended(self, outcome: str) -> AuditEntry:
        return dataclasses.replace(self, outcome=outcome)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """An :class:`AuditEntry` as the journal keeps it: numbered, timed and chained."""

    seq: int
    at: int
    actor: str
    peer: str
    action: str
    outcome: str
    order_no: str | None
    terminal: str | None
    detail: Mapping[str, object]
    prev_hash: str
    hash: str

    @property
    def ok(self) -> bool:
        return self.outcome == OK


def canonical(seq: int, at: int, entry: AuditEntry | AuditRecord) -> str:
    """The text a record's hash covers (besides the previous hash); see the module docstring."""
    return json.dumps(
        [seq, at, entry.actor, entry.peer, entry.action, entry.order_no, entry.terminal,
         entry.outcome, dict(entry.detail)],
        sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def record_hash(prev_hash: str, seq: int, at: int, entry: AuditEntry | AuditRecord) -> str:
    return hashlib.sha256((prev_hash + canonical(seq, at, entry)).encode("ascii")).hexdigest()


def chained(entry: AuditEntry, *, seq: int, at: int, prev_hash: str) -> AuditRecord:
    """``entry`` as record ``seq`` after the record whose hash is ``prev_hash``."""
    return AuditRecord(seq=seq, at=at, actor=entry.actor, peer=entry.peer, action=entry.action,
                       outcome=entry.outcome, order_no=entry.order_no, terminal=entry.terminal,
                       detail=dict(entry.detail), prev_hash=prev_hash,
                       hash=record_hash(prev_hash, seq, at, entry))


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first record at which the chain is not whole, and why."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last record of a whole chain (``seq`` 0 and :data:`GENESIS` for an empty one)."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def verify_chain(records: Iterable[AuditRecord], *,
                 anchor: ChainHead | None = None) -> ChainHead | ChainBreak:
    """Walk ``records`` in ``seq`` order: the head of a whole chain, else the first break.

    With ``anchor`` (a head noted earlier), record ``anchor.seq`` must still be there with that
    hash: a chain rewritten from an earlier record on, or cut short, then fails too."""
    expected_seq, prev = 1, GENESIS
    anchored = anchor is None or anchor.seq == 0
    for rec in records:
        if rec.seq != expected_seq:
            missing = (f"record {expected_seq} is missing" if rec.seq > expected_seq
                       else f"a record numbered {rec.seq} again")
            return ChainBreak(rec.seq, f"follows record {expected_seq - 1} ({missing}: "
                                       "a record was removed or inserted)")
        if rec.prev_hash != prev:
            return ChainBreak(rec.seq, "its previous hash is not record "
                                       f"{rec.seq - 1}'s hash (a record before it was changed, "
                                       "removed or inserted)")
        if record_hash(rec.prev_hash, rec.seq, rec.at, rec) != rec.hash:
            return ChainBreak(rec.seq, "its hash does not match its fields (it was changed)")
        if anchor is not None and rec.seq == anchor.seq:
            if rec.hash != anchor.hash:
                return ChainBreak(rec.seq, f"its hash is not the anchor's {anchor.hash} "
                                           "(the chain was rewritten from here or earlier)")
            anchored = True
        expected_seq, prev = rec.seq + 1, rec.hash
    if not anchored:
        assert anchor is not None
        return ChainBreak(anchor.seq, f"the anchor's record is missing (the trail ends at "
                                      f"record {expected_seq - 1}: records were removed)")
    return ChainHead(expected_seq - 1, prev)


def parse_anchor(text: str) -> ChainHead:
    """``SEQ:HASH`` as printed by ``audit verify``; ValueError when it is not one."""
    seq, sep, digest = text.strip().partition(":")
    if (not sep or not seq.isdigit() or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)):
        raise ValueError("an anchor is SEQ:HASH as `posbridge audit verify` prints it")
    return ChainHead(int(seq), digest)

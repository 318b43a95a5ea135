"""How deep a provider's JSON may nest before it is refused unread.

Provider answers and notifications nest a few levels (an answer, its ``data``, a list in it);
signature checks and readers walk them recursively, so a body of thousands of nested brackets
would exhaust the stack there. The message readers refuse anything deeper than
:data:`MAX_DEPTH` right after decoding.
"""

from __future__ import annotations

from typing import Final

MAX_DEPTH: Final = 32


def too_deep(value: object, limit: int = MAX_DEPTH, *, text: str | bytes | None = None) -> bool:
    """Whether ``value`` nests lists or objects more than ``limit`` levels (checked without
    recursion, so it is safe on any decoded value). ``text``: the JSON it was decoded from;
    with no more opening brackets in it than ``limit`` (in strings or not), it cannot."""
    if text is not None and _openings(text) <= limit:
        return False
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _openings(text: str | bytes) -> int:
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")

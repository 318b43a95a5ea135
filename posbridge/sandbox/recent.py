"""A list that keeps only its newest items: the simulators' bounded recording.

The simulators record what they received and sent so that tests can look at it
(``sim.requests[-1]``, ``sim.creates == []``). A sandbox or a soak runs for hours, so every such
record keeps at most its newest ``limit`` items. :class:`Recent` is a ``list`` (it compares
equal to one, indexes and iterates like one) whose :meth:`append` drops the oldest items once
there are more than ``limit``; it drops them in chunks of a quarter of ``limit``, so an append
stays cheap on average.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class Recent(list[T]):
    """A list of at most ``limit + limit // 4`` items; after a trim, the newest ``limit``."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        super().__init__()
        self.limit = limit
        #: items ever appended (dropped ones included)
        self.appended = 0

    def append(self, item: T) -> None:
        """Add ``item`` at the end; forget the oldest items beyond ``limit`` now and then."""
        super().append(item)
        self.appended += 1
        if len(self) > self.limit + self.limit // 4:
            del self[: len(self) - self.limit]

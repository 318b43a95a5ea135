"""Kinds of device whose code is imported only when a configuration uses them.

A serial pole display needs pyserial, a file display needs Pillow's drawing and fonts, a
raster printer needs Pillow: a daemon configured with none of them should not pay for them in
memory and start-up time. :class:`LazyKinds` maps a configuration ``kind`` to the
``"module:Class"`` that implements it and imports the module on first lookup.
:func:`lazy_attributes` gives a package the module ``__getattr__`` (PEP 562) that does the same
for its public names, so ``from hardware.displays import PoleDisplay`` keeps working.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def load(target: str) -> Any:
    """The object named by ``"package.module:name"``."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class LazyKinds(Mapping[str, Callable[..., T]], Generic[T]):
    """``kind -> class``; each class's module is imported on its first lookup."""

    def __init__(self, targets: Mapping[str, str]) -> None:
        self._targets = dict(targets)

    def __getitem__(self, kind: str) -> Callable[..., T]:
        cls: Callable[..., T] = load(self._targets[kind])
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def __repr__(self) -> str:
        return f"LazyKinds({self._targets!r})"

    def targets(self) -> list[str]:
        """The ``"module:Class"`` of every kind."""
        return list(self._targets.values())


def lazy_attributes(namespace: dict[str, Any], targets: Iterable[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the package whose ``globals()`` is ``namespace``: the name
    of each ``"module:name"`` of ``targets`` is imported when first read (then kept in the
    namespace); any other name is an ``AttributeError``."""
    by_name = {target.partition(":")[2]: target for target in targets}

    def __getattr__(name: str) -> Any:
        try:
            target = by_name[name]
        except KeyError:
            package = namespace["__name__"]
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = namespace[name] = load(target)
        return value

    return __getattr__

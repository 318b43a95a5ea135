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
from collections.abc import Callable, Iterator, Mapping
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


def lazy_attributes(package: str, targets: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: a name of ``targets`` is imported when first
    read (and kept in the package's namespace); any other name is an ``AttributeError``."""

    def __getattr__(name: str) -> Any:
        try:
            target = targets[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = load(target)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value
        return value

    return __getattr__

"""Name → entry tables that do not depend on import order.

A :class:`Registry` holds the built-in entries given where it is defined and the entries
that other modules add when they are imported (``MODELS["flowmap"] = FlowMapNet``,
``register_asset(name, recipe)``). Those modules are named in the registry's ``providers``:
looking up a name that is not registered yet, or listing the registry, first imports every
provider, so ``asset("fm_shapes16")`` or ``build_model({"name": "flowmap", ...})`` works in a
fresh interpreter whatever the caller imported before. A provider imports the registry,
never the other way round at module level, so the providers list adds no import cycle.

To add an entry from a new module: register it at the module's top level and add the
module's dotted name to the registry's ``providers`` (tests/test_registries.py fails,
naming the module, if an entry is registered by a module that is not listed).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(MutableMapping[str, T], Generic[T]):
    """A mapping of ``kind`` entries; ``providers`` are imported on the first miss or listing."""

    def __init__(self, kind: str, entries: dict[str, T], providers: tuple[str, ...] = ()):
        self.kind = kind
        self.providers = tuple(providers)
        self._entries = dict(entries)
        self._loaded = not self.providers

    def load(self) -> None:
        """Import every provider module (once), so that every entry is registered."""
        if self._loaded:
            return
        self._loaded = True  # first: a provider may read the registry while it is imported
        try:
            for module in self.providers:
                importlib.import_module(module)
        except BaseException:
            self._loaded = False
            raise

    def lookup(self, name: str) -> T:
        """The entry ``name``, or a ``ValueError`` listing every registered name."""
        if name not in self:
            raise ValueError(
                f"unknown {self.kind} {name!r}; expected one of {', '.join(map(repr, sorted(self)))}"
            )
        return self._entries[name]

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            self.load()
        return self._entries[name]

    def __contains__(self, name) -> bool:
        if name not in self._entries:
            self.load()
        return name in self._entries

    def __setitem__(self, name: str, entry: T) -> None:
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self.load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)}, providers={self.providers})"

"""One small generic registry, shared by datasets, models, methods and metrics.

Like timm's model registry: an entry is registered once by a decorator, looked up by name,
and every consumer (CLI listing, runner, tables, plots) enumerates ``names()`` instead of
keeping a list of its own.
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Callable, Generic, Iterator, Optional, TypeVar

from signed_saliency.errors import UserError

T = TypeVar("T")


def describe(fn: Callable, description: Optional[str] = None) -> str:
    """An entry's one-line description: ``description`` when given, else the first line of
    ``fn``'s docstring (empty without one), so a decorated function documents itself."""
    if description:
        return description
    doc = (fn.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""


def check_choice(entry: str, key: str, value: object, valid: tuple[str, ...]) -> None:
    """A one-line UserError, naming the entry and the valid values, for a declared value
    (a method's direction, a metric's family) that is not one of ``valid``."""
    if value not in valid:
        raise UserError(f"{entry}: {key} must be one of {', '.join(valid)}, got {value!r}")


class UnknownNameError(UserError, KeyError):
    """A name that no entry of a registry carries; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, valid
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid) or 'none'}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry(Generic[T]):
    """Maps names to entries of one concept, in registration order.

    ``build`` turns what the decorator received (a function plus keyword metadata) into
    the stored entry, so each concept decides what an entry is (a ``Method`` object, a
    ``DatasetSpec``...) while the registering, lookup and error messages live here once.
    """

    def __init__(self, kind: str, build: Callable[..., T]):
        self.kind = kind
        self._build = build
        self._entries: dict[str, T] = {}
        # prefix -> resolve(name): entries built on first use, e.g. "quantus:<Metric>"
        self._resolvers: dict[str, Callable[[str], T]] = {}
        self._resolved: dict[str, T] = {}
        self._usages: dict[str, str] = {}  # prefix -> how errors list it ("folder:PATH")

    def register(self, name: str, **metadata) -> Callable[[Callable], Callable]:
        """Decorator: ``@registry.register("name", key=value, ...)`` on a function."""

        def decorate(fn: Callable) -> Callable:
            self.add(name, self._build(name=name, fn=fn, **metadata))
            return fn

        return decorate

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise UserError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def add_resolver(self, prefix: str, resolve: Callable[[str], T], usage: Optional[str] = None) -> None:
        """Let :meth:`get` build the entry of any name starting with ``prefix`` on first use
        (``resolve(name)`` returns it, or raises :class:`UnknownNameError` listing the names
        it knows), for families too large or too slow to import to register one by one.
        Resolved entries are not in :meth:`names`: that lists what is registered. ``usage``
        (e.g. ``"folder:PATH"``) lists the family among the valid names in errors, and a bare
        prefix is refused with it."""
        if prefix in self._resolvers:
            raise ValueError(f"{self.kind} prefix {prefix!r} has a resolver already")
        self._resolvers[prefix] = resolve
        if usage is not None:
            self._usages[prefix] = usage

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        for prefix, resolve in self._resolvers.items():
            if name.startswith(prefix):
                if name == prefix and prefix in self._usages:
                    raise UserError(f"{self.kind} {name!r} is incomplete: write it as {self._usages[prefix]}")
                if name not in self._resolved:
                    self._resolved[name] = resolve(name)
                return self._resolved[name]
        raise UnknownNameError(self.kind, name, self.names() + list(self._usages.values()))

    def names(self) -> list[str]:
        return list(self._entries)

    @contextlib.contextmanager
    def override(self, *entries: T) -> Iterator[None]:
        """Within the block, ``entries`` stand in for the registered entries of their names
        (for tests and notebooks: a fixed revision, a stub); afterwards the originals return."""
        originals = {entry.name: self.get(entry.name) for entry in entries}
        self._entries.update({entry.name: entry for entry in entries})
        try:
            yield
        finally:
            self._entries.update(originals)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)


def import_submodules(package_name: str, package_path: list[str]) -> None:
    """Import every module of a package, so a new file's decorated functions register
    themselves with no edit elsewhere. Modules load in name order; a module whose
    registrations depend on others' imports those itself."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name != "core":
            importlib.import_module(f"{package_name}.{info.name}")

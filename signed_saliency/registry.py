"""One small generic registry, shared by datasets, models, methods and metrics.

Like timm's model registry: an entry is registered once by a decorator, looked up by name,
and every consumer (CLI listing, runner, tables, plots) enumerates ``names()`` instead of
keeping a list of its own.
"""

from __future__ import annotations

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

    A *scheme* resolves a family of names that cannot be listed in advance: with
    ``add_scheme("folder", resolve, "folder:PATH")``, ``get("folder:data/pets")`` returns
    ``resolve("data/pets")``, an entry made on the spot.
    """

    def __init__(self, kind: str, build: Callable[..., T]):
        self.kind = kind
        self._build = build
        self._entries: dict[str, T] = {}
        self._schemes: dict[str, tuple[Callable[[str], T], str]] = {}

    def register(self, name: str, **metadata) -> Callable[[Callable], Callable]:
        """Decorator: ``@registry.register("name", key=value, ...)`` on a function."""

        def decorate(fn: Callable) -> Callable:
            self.add(name, self._build(name=name, fn=fn, **metadata))
            return fn

        return decorate

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def add_scheme(self, scheme: str, resolve: Callable[[str], T], usage: str) -> None:
        """Resolve ``"<scheme>:<rest>"`` names by ``resolve(rest)``; ``usage`` (e.g.
        ``"folder:PATH"``) is how error messages list the scheme among the valid names."""
        if scheme in self._schemes:
            raise ValueError(f"{self.kind} scheme {scheme!r} is added twice")
        self._schemes[scheme] = (resolve, usage)

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        scheme, colon, rest = name.partition(":")
        if colon and scheme in self._schemes:
            resolve, usage = self._schemes[scheme]
            if not rest:
                raise UserError(f"{self.kind} {name!r} is incomplete: write it as {usage}")
            return resolve(rest)
        raise UnknownNameError(self.kind, name, self.names() + [usage for _, usage in self._schemes.values()])

    def names(self) -> list[str]:
        return list(self._entries)

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

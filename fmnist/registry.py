"""Name -> function registries: a new feature, embedding or classifier is one file plus one line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .errors import ChoiceError


@dataclass(frozen=True)
class Entry:
    name: str
    fn: Callable[..., Any]
    params: dict[str, Any] = field(default_factory=dict)  # defaults that change the result
    doc: str = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def hook(self, name: str, default: Any = None) -> Any:
        """What the registering module declared beside the function (``fn.validate``, ``fn.label`` ...)."""
        return getattr(self.fn, name, default)


class Registry:
    """``@REG.register("name", param=default)`` on a function; ``REG.get(name)``; ``REG.names()``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **params: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            doc = (fn.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, fn, dict(params), doc[0] if doc else "")
            return fn

        return deco

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ChoiceError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def expand(self, spec: str) -> list[str]:
        """'all' -> every name; 'a,b' -> ['a', 'b'] (each checked)."""
        if spec.strip() == "all":
            return self.names()
        names = [s.strip() for s in spec.split(",") if s.strip()]
        if not names:
            raise ChoiceError(f"no {self.kind} given; choose from: all, {', '.join(self.names())}")
        for n in names:
            self.get(n)
        return names

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

"""A name -> factory registry, timm-style: ``@REGISTRY.register("name")`` on a factory, ``REGISTRY.get("name")``."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str):
        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorate

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``; an unknown name raises a KeyError that lists the known ones."""
        if name not in self._factories:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")
        return self._factories[name]

"""One registry of benchmarks: ``@register_benchmark("name")`` on a factory, ``create_benchmark("name", ...)``."""
from __future__ import annotations

from typing import Callable

from study.data.benchmark import Benchmark

_BENCHMARKS: dict[str, Callable[..., Benchmark]] = {}


def register_benchmark(name: str):
    def decorate(factory: Callable[..., Benchmark]):
        if name in _BENCHMARKS:
            raise ValueError(f"benchmark {name!r} is registered twice")
        _BENCHMARKS[name] = factory
        return factory

    return decorate


def list_benchmarks() -> list[str]:
    return sorted(_BENCHMARKS)


def create_benchmark(name: str, *, transform=None, cache_dir=None, **options) -> Benchmark:
    """Build benchmark ``name``; ``transform`` (or a later ``set_transform``) is the backbone's eval transform."""
    if name not in _BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; choose one of {', '.join(list_benchmarks())}")
    return _BENCHMARKS[name](transform=transform, cache_dir=cache_dir, **options)

"""The benchmarks: ``@register_benchmark("name")`` on a factory, ``create_benchmark("name", ...)``."""
from __future__ import annotations

from study.data.benchmark import Benchmark
from study.registry import Registry

BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
register_benchmark = BENCHMARKS.register
list_benchmarks = BENCHMARKS.names


def create_benchmark(name: str, *, transform=None, cache_dir=None, data_root=None) -> Benchmark:
    """Build benchmark ``name``; ``transform`` (or a later ``set_transform``) is the backbone's eval transform.
    ``data_root`` is where data sets on disk live (the embedded benchmark needs none)."""
    options = {"data_root": data_root} if data_root is not None else {}
    benchmark = BENCHMARKS.get(name)(cache_dir=cache_dir, **options)
    if transform is not None:
        benchmark.set_transform(transform)
    return benchmark

"""The benchmarks: ``@register_benchmark("name")`` on a factory, ``create_benchmark("name", ...)``."""
from __future__ import annotations

import inspect

from study.data.benchmark import Benchmark
from study.registry import Registry

BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
list_benchmarks = BENCHMARKS.names
_HOLDS_TEXT: set[str] = set()


def register_benchmark(name: str, *, holds_text: bool = False):
    """``@register_benchmark("name")`` on a factory; ``holds_text``: its splits are sentences (``Sentences``), for a
    backbone that reads text, not images or vectors. A factory with an ``input_size`` parameter draws its images
    at the size a study asks for (``takes_input_size``)."""
    if holds_text:
        _HOLDS_TEXT.add(name)
    return BENCHMARKS.register(name)


def holds_text(name: str) -> bool:
    return name in _HOLDS_TEXT


def takes_input_size(name: str) -> bool:
    """Whether benchmark ``name`` draws its images at a size the study sets (``input_size``)."""
    return "input_size" in inspect.signature(BENCHMARKS.get(name)).parameters


def create_benchmark(name: str, *, transform=None, cache_dir=None, data_root=None, input_size=None,
                     files=None) -> Benchmark:
    """Build benchmark ``name``; ``transform`` (or a later ``set_transform``) is the backbone's eval transform.
    ``data_root`` is where data sets on disk live (the embedded benchmark needs none); ``input_size`` the image
    side of a benchmark that takes one (None: its own); ``files``: the study file's own data (a
    ``study.data.custom.FilesSpec``, named ``name``) instead of a registered benchmark."""
    if files is not None:
        from study.data.custom import build

        benchmark = build(files, data_root)
        if transform is not None:
            benchmark.set_transform(transform)
        return benchmark
    options = {"data_root": data_root} if data_root is not None else {}
    options |= {"input_size": input_size} if input_size is not None else {}
    benchmark = BENCHMARKS.get(name)(cache_dir=cache_dir, **options)
    if transform is not None:
        benchmark.set_transform(transform)
    return benchmark

"""Shared fixtures: one cache folder per test session, so the embedded backbone is pretrained once."""
from __future__ import annotations

import os

import pytest
import torch

from study.data import Benchmark, TensorImages, create_benchmark
from study.models import create_backbone


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """The session's cache; subprocesses (the CLI, Ray workers) find it through $LPFT_CACHE_DIR."""
    folder = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("LPFT_CACHE_DIR")
    os.environ["LPFT_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("LPFT_CACHE_DIR", None)
    else:
        os.environ["LPFT_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def glyphs(cache_dir) -> Benchmark:
    """The embedded benchmark, with the embedded backbone's transform."""
    data = create_benchmark("glyphs", cache_dir=cache_dir)
    data.set_transform(make_backbone(cache_dir, data.num_classes).transform)
    return data


def make_backbone(cache_dir, num_classes: int, seed: int = 0):
    torch.manual_seed(seed)
    return create_backbone("glyphnet", num_classes=num_classes, cache_dir=cache_dir)


@pytest.fixture
def backbone(cache_dir, glyphs):
    """A fresh pretrained glyphnet with a seeded new head."""
    return make_backbone(cache_dir, glyphs.num_classes)


@pytest.fixture(scope="session")
def small_glyphs(glyphs) -> Benchmark:
    """The first images of every split: the same data, small enough for a few quick epochs."""
    sizes = {"train": 320}
    splits = {name: TensorImages(split.images[: sizes.get(name, 200)], split.labels[: sizes.get(name, 200)],
                                 split.transform)
              for name, split in glyphs.splits.items()}
    return Benchmark(name="glyphs-small", classes=glyphs.classes, ood_domains=glyphs.ood_domains, splits=splits,
                     fingerprint=glyphs.fingerprint + "-small")

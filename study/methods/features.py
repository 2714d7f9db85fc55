"""Frozen-backbone features, extracted once per (backbone, benchmark, transform) into the cache.

A study extracts them once, before its trials, where the accelerators are (``study.tune.prepare``); every trial
then reads the file, memory-mapped, so a trial that only needs the evaluation splits never reads the train split.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from study.cache import cache_root, cached, content_hash
from study.data import Benchmark, Pipeline
from study.data.protocol import Inputs, inputs_for
from study.methods.evaluation import prepare_model
from study.models import Backbone, create_backbone, features

Features = dict[str, tuple[torch.Tensor, torch.Tensor]]  # split -> (features [N, D] float32, labels [N])


class FeaturesMissing(FileNotFoundError):
    """A trial found no features where the study extracted them (one line: the file and the fix)."""


@torch.no_grad()
def extract(backbone: Backbone, data: Pipeline, *, batch_size: int = 512, progress: bool = False) -> Features:
    """Penultimate features of every split of ``data``'s benchmark, with the backbone in eval mode on ``data``'s
    device."""
    model = prepare_model(backbone.model, data.device).eval()
    splits = data.benchmark.splits
    out = {}
    with tqdm(total=sum(len(s) for s in splits.values()), desc="extracting features", unit="img",
              disable=not progress) as bar:
        for split in splits:
            chunks, labels = [], []
            for images, targets in data.split(split, batch_size=batch_size):
                chunks.append(features(model, images).float().cpu())
                labels.append(targets.cpu())
                bar.update(len(targets))
            out[split] = (torch.cat(chunks), torch.cat(labels))
    return out


def feature_file(backbone: Backbone, benchmark: Benchmark, inputs: Inputs, cache_dir=None) -> Path:
    """Where the features of ``backbone`` on ``benchmark`` through ``inputs`` (their test side) are cached."""
    key = content_hash("features", backbone.fingerprint, benchmark.fingerprint, inputs.key(), "channels_last")
    return cache_root(cache_dir) / "features" / f"{backbone.name}-{benchmark.name}-{key}.pt"


def cached_features(backbone: Backbone, benchmark: Benchmark, inputs: Inputs, *, cache_dir=None, device="cpu",
                    num_workers: int = 0, progress: bool = False) -> Path:
    """``extract`` into the cache (every split through ``inputs``' test transform), unless the features are there
    already; returns their file."""
    file = feature_file(backbone, benchmark, inputs, cache_dir)

    def compute():
        benchmark.set_transform(inputs.test)
        data = Pipeline(benchmark, device=device, normalize=inputs.normalize, num_workers=num_workers)
        return {split: {"x": x, "y": y} for split, (x, y) in extract(backbone, data, progress=progress).items()}

    cached(file, compute, load=False)
    return file


def prepare_features(benchmark: Benchmark, backbone: str, *, transforms: str = "paper", cache_dir=None, weights=None,
                     device="cpu", num_workers: int = 0, progress: bool = False) -> dict:
    """A study's one extraction: build (pretrain, where it is the embedded one) ``backbone`` and cache its features
    of ``benchmark`` (through the inputs ``transforms`` selects: see ``study.data.protocol``). Returns where they
    are and what they were made from: {"file", "fingerprints", "extracted" (False: they were cached already),
    "seconds", "device"}."""
    start = time.perf_counter()
    encoder = create_backbone(backbone, num_classes=benchmark.num_classes, cache_dir=cache_dir, progress=progress,
                              weights=weights)
    inputs = inputs_for(benchmark.name, encoder, transforms, benchmark.protocol)
    file = feature_file(encoder, benchmark, inputs, cache_dir)
    extracted = not file.exists()
    cached_features(encoder, benchmark, inputs, cache_dir=cache_dir, device=device, num_workers=num_workers,
                    progress=progress)
    return {"file": str(file), "fingerprints": {"benchmark": benchmark.fingerprint, "backbone": encoder.fingerprint},
            "extracted": extracted, "seconds": round(time.perf_counter() - start, 2), "device": str(device)}


def load_features(file: str | os.PathLike) -> Features:
    """The features a study extracted, memory-mapped: only what a trial touches is read."""
    try:
        stored = torch.load(file, mmap=True, weights_only=True)
    except FileNotFoundError:
        raise FeaturesMissing(f"{file}: the study's features are not on this node; on a cluster of several nodes, "
                              "set cache_dir (or $LPFT_CACHE_DIR) to a folder every node mounts") from None
    return {split: (value["x"], value["y"]) for split, value in stored.items()}

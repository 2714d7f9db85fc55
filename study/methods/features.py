"""Frozen-backbone features, extracted once per (backbone, benchmark, transform) and cached on disk."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from study.cache import cache_root, cached, content_hash
from study.data import Benchmark, loader
from study.methods.evaluation import prepare_model, to_device
from study.models import Backbone, features

Features = dict[str, tuple[torch.Tensor, torch.Tensor]]  # split -> (features [N, D] float32, labels [N])


@torch.no_grad()
def extract(backbone: Backbone, benchmark: Benchmark, *, batch_size: int = 512, device="cpu",
            progress: bool = False) -> Features:
    """Penultimate features of every split, with the backbone in eval mode."""
    model = prepare_model(backbone.model, device).eval()
    out = {}
    for split, dataset in tqdm(benchmark.splits.items(), desc="extracting features", disable=not progress):
        chunks, labels = [], []
        for images, targets in loader(dataset, batch_size):
            chunks.append(features(model, to_device(images, device)).float().cpu())
            labels.append(targets)
        out[split] = (torch.cat(chunks), torch.cat(labels))
    return out


def feature_key(backbone: Backbone, benchmark: Benchmark) -> str:
    return content_hash("features", backbone.fingerprint, benchmark.fingerprint, repr(backbone.transform),
                        "channels_last")


def cached_features(backbone: Backbone, benchmark: Benchmark, *, cache_dir=None, device="cpu",
                    progress: bool = False) -> Features:
    """``extract``, computed by the first caller and read from the cache by every later one."""
    path = cache_root(cache_dir) / "features" / f"{backbone.name}-{benchmark.name}-{feature_key(backbone, benchmark)}.pt"
    stored = cached(path, lambda: {split: {"x": x, "y": y} for split, (x, y) in
                                   extract(backbone, benchmark, device=device, progress=progress).items()})
    return {split: (value["x"], value["y"]) for split, value in stored.items()}

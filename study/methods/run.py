"""One trial, Ray-free: build the benchmark and a seeded backbone, then run the named method."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from study.config import METHODS
from study.data import create_benchmark
from study.methods.evaluation import EpochResult
from study.methods.features import cached_features
from study.methods.ft import fine_tune
from study.methods.lora import lora_ft
from study.methods.lp import linear_probe, to_l2
from study.methods.lpft import lp_ft
from study.models import create_backbone

FINE_TUNING = tuple(method for method in METHODS if method != "lp")  # those that train the encoder: ``fine_tune``


def run_method(method: str, hparams: dict, *, benchmark: str, backbone: str, seed: int,
               head: tuple[str, Sequence[float]] = ("l2", ()), cache_dir=None, data_root=None, weights=None, device="cpu",
               resume: dict | None = None, num_workers: int = 0, wise_alphas: Sequence[float] = (),
               precision: str = "fp32") -> Iterator[EpochResult]:
    """Yield ``method``'s per-epoch results for one hyper-parameter setting and seed.

    The seed fixes the new head's initialisation and the order of the training data. ``head`` is the LP stage of
    LP-FT and LP-LoRA: ("l2", values) or ("C", values). LP's own strength is ``hparams["l2"]`` or ``hparams["C"]``.
    LoRA's ``rank`` and ``scale`` are in ``hparams``. ``wise_alphas`` and ``precision``: see ``fine_tune``.
    """
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r}")
    if method == "lp" and resume is not None:  # LP has a single epoch: a checkpoint means it already reported
        return
    data = create_benchmark(benchmark, cache_dir=cache_dir, data_root=data_root)
    torch.manual_seed(seed)
    encoder = create_backbone(backbone, num_classes=data.num_classes, cache_dir=cache_dir, weights=weights)
    data.set_transform(encoder.transform)
    # The pretrained encoder's features: LP's inputs, LP-FT's LP stage, and what FT's feature change is measured from.
    features = cached_features(encoder, data, cache_dir=cache_dir, device=device)
    if method == "lp":
        l2 = to_l2("C", [hparams["C"]], features)[0] if "C" in hparams else hparams["l2"]
        yield from linear_probe(features, l2=l2, num_classes=data.num_classes, class_subsets=data.class_subsets)
        return
    common = dict(seed=seed, device=device, resume=resume, num_workers=num_workers, reference=features,
                  wise_alphas=wise_alphas, precision=precision, **hparams)
    if method == "ft":
        yield from fine_tune(encoder.model, data, **common)
    elif method == "lora":
        yield from lora_ft(encoder.model, data, **common)
    else:  # lpft, or lplora (its rank and scale are in hparams)
        yield from lp_ft(encoder.model, data, features, head_l2=to_l2(*head, features), **common)

"""One trial, Ray-free: the named method on a built benchmark and the study's extracted features."""
from __future__ import annotations

import os
from typing import Iterator, Sequence

import torch

from study.config import METHODS
from study.data import Benchmark, Pipeline
from study.data.protocol import inputs_for
from study.methods.distributed import rank_and_world
from study.methods.evaluation import EpochResult
from study.methods.features import load_features
from study.methods.ft import fine_tune
from study.methods.lora import lora_ft
from study.methods.lp import linear_probe, to_l2
from study.methods.lpft import lp_ft
from study.models import create_backbone

FINE_TUNING = tuple(method for method in METHODS if method != "lp")  # those that train the encoder: ``fine_tune``


def run_method(method: str, hparams: dict, *, data: Benchmark, features_file: str | os.PathLike, backbone: str,
               seed: int, lp_grid: tuple[str, Sequence[float]] = ("l2", ()), head: tuple[str, Sequence[float]] = ("l2", ()),
               cache_dir=None, weights=None, device="cpu", resume: dict | None = None, num_workers: int = 0,
               wise_alphas: Sequence[float] = (), precision: str = "fp32", schedule: str = "epoch",
               transforms: str = "paper") -> Iterator[EpochResult]:
    """Yield ``method``'s per-epoch results for one hyper-parameter setting and seed, on ``device``.

    ``data`` is the study's benchmark and ``features_file`` the pretrained encoder's features of it (LP's inputs,
    LP-FT's LP stage, and what the feature change of the FT-like methods is measured from), extracted once per
    study. The seed fixes the new head's initialisation and the order of the training data. LP's strength is
    ``hparams["l2"]`` or ``hparams["C"]``; ``lp_grid`` is the study's whole LP grid, solved as one cached path.
    ``head`` is the LP stage of LP-FT and LP-LoRA: ("l2", values) or ("C", values). LoRA's ``rank`` and ``scale``
    are in ``hparams``. ``num_workers``: DataLoader processes. ``wise_alphas``, ``precision`` and ``schedule``:
    see ``fine_tune``. ``transforms``: the paper's inputs for its benchmarks, or the backbone's
    (``study.data.protocol``).
    """
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r}")
    features = load_features(features_file)
    if method == "lp":
        (l2,) = to_l2("C", [hparams["C"]], features) if "C" in hparams else [hparams["l2"]]
        yield from linear_probe(features, l2=l2, num_classes=data.num_classes, path=to_l2(*lp_grid, features),
                                features_file=features_file, device=device, class_subsets=data.class_subsets,
                                task=data.task)
        return
    torch.manual_seed(seed)
    encoder = create_backbone(backbone, num_classes=data.num_classes, cache_dir=cache_dir, weights=weights)
    inputs = inputs_for(data.name, encoder, transforms)
    data.set_transform(inputs.test, train=inputs.train)
    pipeline = Pipeline(data, device=device, normalize=inputs.normalize, train_normalize=inputs.train_normalize,
                        num_workers=num_workers, shard=rank_and_world())
    common = dict(seed=seed, resume=resume, reference=features, wise_alphas=wise_alphas, precision=precision,
                  schedule=schedule, **hparams)
    if method == "ft":
        yield from fine_tune(encoder.model, pipeline, **common)
    elif method == "lora":
        yield from lora_ft(encoder.model, pipeline, **common)
    else:  # lpft, or lplora (its rank and scale are in hparams)
        yield from lp_ft(encoder.model, pipeline, features, head_l2=to_l2(*head, features),
                         features_file=features_file, **common)

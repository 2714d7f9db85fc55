"""One trial, Ray-free: the named method on a built benchmark and the study's extracted features."""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Iterator, Sequence

import torch

from study.data import Benchmark, Pipeline
from study.data.protocol import inputs_for
from study.methods.catalog import Setup, get_method
from study.methods.distributed import rank_and_world
from study.methods.evaluation import EpochResult, Scoring
from study.methods.features import load_features
from study.models import create_backbone


def run_method(method: str, hparams: dict, *, data: Benchmark, features_file: str | os.PathLike, backbone: str,
               seed: int, lp_grid: tuple[str, Sequence[float]] = ("l2", ()),
               head: tuple[str, Sequence[float]] = ("l2", ()),
               cache_dir=None, weights=None, device="cpu", resume: dict | None = None, num_workers: int = 0,
               wise_alphas: Sequence[float] = (), precision: str = "fp32", schedule: str = "epoch",
               optimizer: str = "sgd", transforms: str = "paper") -> Iterator[EpochResult]:
    """Yield ``method``'s per-epoch results for one hyper-parameter setting and seed, on ``device``; a
    hyper-parameter ``hparams`` leaves out takes its default (``study.methods.catalog``).

    ``data`` is the study's benchmark and ``features_file`` the pretrained encoder's features of it (LP's inputs,
    LP-FT's LP stage, and what the feature change of the methods that train the encoder is measured from),
    extracted once per study. ``lp_grid`` is the study's whole LP grid, solved as one cached path; ``head`` the
    LP stage of LP-FT and LP-LoRA; both ("l2", values) or ("C", values). For a method that trains the encoder,
    the seed fixes the new head's initialisation and the order of the training data, ``num_workers`` is the
    DataLoader's processes, ``transforms`` the paper's inputs for its benchmarks or the backbone's
    (``study.data.protocol``); ``wise_alphas``, ``precision``, ``schedule`` and ``optimizer``: see ``fine_tune``.
    """
    entry = get_method(method)
    features = load_features(features_file)
    setup = Setup(data, features, features_file, device, lp_grid, head)
    if entry.trains_encoder:
        torch.manual_seed(seed)
        encoder = create_backbone(backbone, num_classes=data.num_classes, cache_dir=cache_dir, weights=weights)
        inputs = inputs_for(data.name, encoder, transforms, data.protocol)
        data.set_transform(inputs.test, train=inputs.train)
        pipeline = Pipeline(data, device=device, normalize=inputs.normalize, train_normalize=inputs.train_normalize,
                            num_workers=num_workers, shard=rank_and_world())
        setup = replace(setup, model=encoder.model, pipeline=pipeline, training=dict(
            seed=seed, resume=resume, precision=precision, schedule=schedule, optimizer=optimizer,
            scoring=Scoring(reference=features, wise_alphas=wise_alphas)))
    yield from entry.run(setup, **{**entry.defaults(), **hparams})

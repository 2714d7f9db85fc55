"""Every transfer method the study knows, one entry each, as timm registers its models and DomainBed lists its
algorithms: the one table the config, the dispatch, the Ray resources, the results table, the report and the
plots all read.

An entry holds a method's label and colour (tables and figures), its hyper-parameters with their types and
defaults (the config's only defaults for them), whether it trains the encoder (a Ray trial of workers and a data
pipeline, or one process on the cached features), whether an LP stage comes first (its strengths: the config's
``lpft_head_l2``), and the function that runs one trial of it: ``run(setup, **hparams)`` yields its per-epoch
results. Adding a method is one plain PyTorch function like ``fine_tune`` and one entry in ``METHODS``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from study.data import Benchmark, Pipeline
from study.methods.evaluation import EpochResult
from study.methods.features import Features
from study.methods.ft import fine_tune
from study.methods.lora import lora_ft
from study.methods.lp import linear_probe, to_l2
from study.methods.lpft import lp_ft


@dataclass(frozen=True)
class Setup:
    """What a method's trial function gets besides its hyper-parameters: the study's benchmark and the pretrained
    encoder's cached features of it, with LP's whole grid and the LP stage's strengths (("l2" or "C", values));
    for a method that trains the encoder, also the backbone with a new head, its data pipeline and
    ``fine_tune``'s per-trial options (seed, resume, scoring, precision, schedule)."""

    data: Benchmark
    features: Features
    features_file: str | os.PathLike
    device: torch.device | str = "cpu"
    lp_grid: tuple[str, Sequence[float]] = ("l2", ())
    head: tuple[str, Sequence[float]] = ("l2", ())
    model: nn.Module | None = None
    pipeline: Pipeline | None = None
    training: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    colour: str
    params: dict[str, tuple[type, Any]]  # hyper-parameter -> (type, default); default None: only when given
    trains_encoder: bool
    lp_first: bool
    run: Callable[..., Iterator[EpochResult]]

    def defaults(self) -> dict[str, Any]:
        """The hyper-parameters a trial of this method gets when the config names none."""
        return {name: default for name, (_, default) in self.params.items() if default is not None}


def _lp(setup: Setup, *, l2: float | None = None, C: float | None = None) -> Iterator[EpochResult]:
    """LP's strength is ``l2`` (mean loss + l2/2 ||W||^2) or, as the paper's sklearn sweep gives it, ``C``."""
    features = setup.features
    (l2,) = to_l2("C", [C], features) if C is not None else [l2]
    return linear_probe(features, l2=l2, num_classes=setup.data.num_classes, path=to_l2(*setup.lp_grid, features),
                        features_file=setup.features_file, device=setup.device,
                        class_subsets=setup.data.class_subsets, task=setup.data.task)


def _ft(setup: Setup, **hparams) -> Iterator[EpochResult]:
    return fine_tune(setup.model, setup.pipeline, **hparams, **setup.training)


def _lora(setup: Setup, **hparams) -> Iterator[EpochResult]:
    return lora_ft(setup.model, setup.pipeline, **hparams, **setup.training)


def _lpft(setup: Setup, **hparams) -> Iterator[EpochResult]:
    """LP-FT, and LP-LoRA when ``hparams`` hold a LoRA rank and scale."""
    return lp_ft(setup.model, setup.pipeline, setup.features, head_l2=to_l2(*setup.head, setup.features),
                 features_file=setup.features_file, **hparams, **setup.training)


_SGD = {"lr": (float, 0.01), "epochs": (int, 10), "batch_size": (int, 64), "momentum": (float, 0.9),
        "weight_decay": (float, 0.0)}  # weight_decay: FT's L2 strength
_LORA = {"rank": (int, 4), "scale": (float, 1.0)}  # a rank-``rank`` update of every encoder layer, times ``scale``

METHODS: dict[str, Method] = {method.name: method for method in (
    Method("lp", "LP", "tab:blue", {"l2": (float, 1e-3), "C": (float, None)}, trains_encoder=False,
           lp_first=False, run=_lp),
    Method("ft", "FT", "tab:red", _SGD, trains_encoder=True, lp_first=False, run=_ft),
    Method("lpft", "LP-FT", "tab:green", {**_SGD, "lr": (float, 0.001)}, trains_encoder=True, lp_first=True,
           run=_lpft),
    Method("lora", "LoRA", "tab:orange", {**_SGD, **_LORA}, trains_encoder=True, lp_first=False, run=_lora),
    Method("lplora", "LP-LoRA", "tab:purple", {**_SGD, "lr": (float, 0.001), **_LORA}, trains_encoder=True,
           lp_first=True, run=_lpft),
)}


def get_method(name: str) -> Method:
    """The entry of method ``name``; an unknown name raises a KeyError that lists the known ones."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def label(name: str) -> str:
    """How tables and figures name a method (its key, for one the catalog does not know)."""
    return METHODS[name].label if name in METHODS else name


def colour(name: str) -> str | None:
    return METHODS[name].colour if name in METHODS else None

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
from study.methods.lora import add_lora
from study.methods.lp import linear_probe, to_l2
from study.methods.lpft import install_lp_head
from study.methods.parts import BLOCK_GROUPS, L2SP, freeze_embedding, train_only_biases, train_only_blocks


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
    parts: tuple = ()  # a fine-tuning variant's parts (``fine_tuning``): what its model is made of

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


Part = Callable[[nn.Module, dict], dict]  # (model, the trial's hyper-parameters: it pops its own) -> options


def lora(model: nn.Module, hparams: dict) -> dict:
    """LoRA adapters on the frozen encoder; batch norm frozen too."""
    add_lora(model, rank=hparams.pop("rank"), scale=hparams.pop("scale"))
    return {"freeze_bn": True}


def dora(model: nn.Module, hparams: dict) -> dict:
    """DoRA adapters (LoRA's update as a direction, with a trained magnitude per unit); batch norm frozen."""
    add_lora(model, rank=hparams.pop("rank"), scale=hparams.pop("scale"), dora=True)
    return {"freeze_bn": True}


def l2sp(model: nn.Module, hparams: dict) -> dict:
    """The loss pulls the encoder toward its pretrained weights and the head toward zero."""
    return {"penalty": L2SP(model, alpha=hparams.pop("sp_alpha"), beta=hparams.pop("sp_beta"))}


def spd(model: nn.Module, hparams: dict) -> dict:
    """Adam with selective projection decay toward the starting weights."""
    return {"optimizer": "spd", "strength": hparams.pop("strength")}


def embedding_frozen(model: nn.Module, hparams: dict) -> dict:
    freeze_embedding(model)
    return {}


def surgical(model: nn.Module, hparams: dict) -> dict:
    train_only_blocks(model, hparams.pop("blocks"))
    return {}


def biases(model: nn.Module, hparams: dict) -> dict:
    train_only_biases(model)
    return {}


def fine_tuning(*parts: Part, lp_first: bool = False) -> Callable[..., Iterator[EpochResult]]:
    """A method's trial function: ``fine_tune`` after its ``parts`` (which tensors train, which optimizer, which
    extra loss term), from the LP head where ``lp_first`` (then with batch norm frozen, LP-FT's rule)."""
    def run(setup: Setup, **hparams) -> Iterator[EpochResult]:
        model, options, extras = setup.model, dict(setup.training), {}
        if lp_first:
            extras["lp_l2"] = install_lp_head(model, setup.features, to_l2(*setup.head, setup.features),
                                              setup.data.num_classes, features_file=setup.features_file,
                                              device=setup.pipeline.device, task=setup.data.task)
            options["freeze_bn"] = True
        options.update(apply_parts(parts, model, hparams))
        return fine_tune(model, setup.pipeline, **hparams, **options, extras=extras)

    return run


def apply_parts(parts: tuple, model: nn.Module, hparams: dict) -> dict:
    """Apply each part to ``model`` (popping its hyper-parameters from ``hparams``); ``fine_tune``'s options."""
    options = {}
    for part in parts:
        options.update(part(model, hparams))
    return options


def prepare_model_for(method: str, model: nn.Module, hparams: dict) -> None:
    """Give a fresh backbone the structure of a trial of ``method`` (LoRA's adapters ...), so that the trial's
    weights load into it (a soup's)."""
    apply_parts(METHODS[method].parts, model, hparams)


def variant(name: str, label: str, colour: str, params: dict, *parts: Part, lp_first: bool = False) -> Method:
    """The catalog entry of a fine-tuning method made of ``parts``."""
    return Method(name, label, colour, params, trains_encoder=True, lp_first=lp_first,
                  run=fine_tuning(*parts, lp_first=lp_first), parts=parts)


class Choice(tuple):
    """A hyper-parameter that takes one of a few names (surgical fine-tuning's block group)."""

    def __call__(self, value) -> str:
        return str(value)


_SGD = {"lr": (float, 0.01), "epochs": (int, 10), "batch_size": (int, 64), "momentum": (float, 0.9),
        "weight_decay": (float, 0.0)}  # weight_decay: FT's L2 strength
_LORA = {"rank": (int, 4), "scale": (float, 1.0)}  # a rank-``rank`` update of every encoder layer, times ``scale``
_LP_LR = {"lr": (float, 0.001)}  # from the LP head: a smaller step, as the paper's grids
_L2SP = {"sp_alpha": (float, 0.01), "sp_beta": (float, 0.01)}  # Li et al.'s alpha (to w0) and beta (the head)
_SPD = {"lr": (float, 1e-3), "epochs": (int, 10), "batch_size": (int, 64), "strength": (float, 1.0)}  # Adam's

METHODS: dict[str, Method] = {method.name: method for method in (
    Method("lp", "LP", "tab:blue", {"l2": (float, 1e-3), "C": (float, None)}, trains_encoder=False,
           lp_first=False, run=_lp),
    variant("ft", "FT", "tab:red", _SGD),
    variant("lpft", "LP-FT", "tab:green", {**_SGD, **_LP_LR}, lp_first=True),
    variant("lora", "LoRA", "tab:orange", {**_SGD, **_LORA}, lora),
    variant("lplora", "LP-LoRA", "tab:purple", {**_SGD, **_LP_LR, **_LORA}, lora, lp_first=True),
    variant("l2sp", "L2-SP", "tab:brown", {**_SGD, **_L2SP}, l2sp),
    variant("lpl2sp", "LP-L2-SP", "tab:pink", {**_SGD, **_LP_LR, **_L2SP}, l2sp, lp_first=True),
    variant("freeze_embed", "freeze-embed", "tab:gray", _SGD, embedding_frozen),
    variant("surgical", "surgical FT", "tab:olive", {**_SGD, "blocks": (Choice(BLOCK_GROUPS), "last")}, surgical),
    variant("bitfit", "BitFit", "tab:cyan", _SGD, biases),
    variant("spd", "SPD", "navy", _SPD, spd),
    variant("lpspd", "LP-SPD", "teal", {**_SPD, "lr": (float, 1e-4)}, spd, lp_first=True),
    variant("dora", "DoRA", "gold", {**_SGD, **_LORA}, dora),
    variant("lpdora", "LP-DoRA", "crimson", {**_SGD, **_LP_LR, **_LORA}, dora, lp_first=True),
)}


def typed(method: str, hparams: dict) -> dict:
    """Hyper-parameter values read back from a table (where a rank is 4.0) in the catalog's types."""
    kinds = {name: kind for name, (kind, _) in METHODS[method].params.items()} if method in METHODS else {}
    return {name: kinds[name](value) if name in kinds else (value.item() if hasattr(value, "item") else value)
            for name, value in hparams.items()}


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

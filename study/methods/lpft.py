"""LP-FT: linear probing first, then fine-tuning from the LP head with batch norm frozen.

Starting FT from a head that already fits the ID data keeps the early gradients, and so the change of the
pretrained features, small: this is what preserves OOD accuracy (Kumar et al. 2022, section 3). Given a LoRA
``rank``, the second stage is LoRA instead of full fine-tuning: LP-LoRA.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence

from torch import nn

from study.data import Pipeline
from study.methods.evaluation import EpochResult
from study.methods.features import Features
from study.methods.ft import fine_tune
from study.methods.lora import add_lora
from study.methods.lp import best_fit, cached_path
from study.methods.metrics import CLASSIFICATION


def install_lp_head(model: nn.Module, features: Features, head_l2: Sequence[float], num_classes: int, *,
                    features_file: str | os.PathLike | None = None, device="cpu",
                    task: str = CLASSIFICATION) -> float:
    """LP over ``head_l2`` on ``features`` of ``model``'s encoder (the path cached beside ``features_file``, so
    every LP-FT trial of a study shares one solve); the best head by ID val goes into ``model``. Returns its L2
    strength."""
    path = cached_path(features, head_l2, num_classes, features_file=features_file, device=device, task=task)
    fit = best_fit(features, path, task)
    fit.head.install(model)
    return fit.l2


def lp_ft(model: nn.Module, data: Pipeline, features: Features, *, head_l2: Sequence[float],
          features_file: str | os.PathLike | None = None, rank: int | None = None, scale: float = 1.0,
          **ft_options) -> Iterator[EpochResult]:
    """``install_lp_head``, then ``fine_tune`` from it with batch norm frozen (after ``add_lora`` if ``rank``).

    The first result (epoch 0) scores the model with the LP head installed: it equals LP's own accuracy. A resumed
    trial reads the head again from the cached path: it is the starting point WiSE-FT interpolates from.
    """
    l2 = install_lp_head(model, features, head_l2, data.benchmark.num_classes, features_file=features_file,
                         device=data.device, task=data.benchmark.task)
    if rank is not None:
        add_lora(model, rank=rank, scale=scale)
    yield from fine_tune(model, data, freeze_bn=True, extras={"lp_l2": l2}, **ft_options)

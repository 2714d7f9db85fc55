"""LP-FT: linear probing first, then fine-tuning from the LP head with batch norm frozen.

Starting FT from a head that already fits the ID data keeps the early gradients, and so the change of the
pretrained features, small: this is what preserves OOD accuracy (Kumar et al. 2022, section 3). Given a LoRA
``rank``, the second stage is LoRA instead of full fine-tuning: LP-LoRA.
"""
from __future__ import annotations

from typing import Iterator, Sequence

from torch import nn

from study.data import Benchmark
from study.methods.evaluation import EpochResult
from study.methods.features import Features
from study.methods.ft import fine_tune
from study.methods.lora import add_lora
from study.methods.lp import best_head, lp_sweep


def install_lp_head(model: nn.Module, features: Features, head_l2: Sequence[float], num_classes: int) -> float:
    """LP over ``head_l2`` on ``features`` of ``model``'s encoder; the best head by ID val goes into ``model``.
    Returns its L2 strength."""
    l2, head = best_head(features, lp_sweep(features, head_l2, num_classes))
    head.install(model)
    return l2


def lp_ft(model: nn.Module, benchmark: Benchmark, features: Features, *, head_l2: Sequence[float],
          rank: int | None = None, scale: float = 1.0, **ft_options) -> Iterator[EpochResult]:
    """``install_lp_head``, then ``fine_tune`` from it with batch norm frozen (after ``add_lora`` if ``rank``).

    The first result (epoch 0) scores the model with the LP head installed: it equals LP's own accuracy. A resumed
    trial fits the head again (seconds on cached features): it is the starting point WiSE-FT interpolates from.
    """
    l2 = install_lp_head(model, features, head_l2, benchmark.num_classes)
    if rank is not None:
        add_lora(model, rank=rank, scale=scale)
    yield from fine_tune(model, benchmark, freeze_bn=True, extras={"lp_l2": l2}, **ft_options)

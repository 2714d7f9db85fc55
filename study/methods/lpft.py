"""LP-FT: linear probing first, then fine-tuning from the LP head with batch norm frozen.

Starting FT from a head that already fits the ID data keeps the early gradients, and so the change of the
pretrained features, small: this is what preserves OOD accuracy (Kumar et al. 2022, section 3).
"""
from __future__ import annotations

from typing import Iterator, Sequence

from torch import nn

from study.data import Benchmark
from study.methods.evaluation import EpochResult
from study.methods.features import Features
from study.methods.ft import fine_tune
from study.methods.lp import best_head, lp_sweep


def lp_ft(model: nn.Module, benchmark: Benchmark, features: Features, *, head_l2: Sequence[float],
          resume: dict | None = None, **ft_options) -> Iterator[EpochResult]:
    """LP over ``head_l2`` (best by ID val) on ``features`` of ``model``'s encoder, then ``fine_tune`` from it.

    The first result (epoch 0) scores the model with the LP head installed: it equals LP's own accuracy.
    """
    extras = {}
    if resume is None:  # a resumed trial's head is inside its saved model
        l2, head = best_head(features, lp_sweep(features, head_l2, benchmark.num_classes))
        head.install(model)
        extras = {"lp_l2": l2}
    yield from fine_tune(model, benchmark, freeze_bn=True, resume=resume, extras=extras, reference=features,
                         **ft_options)

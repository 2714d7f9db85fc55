"""WiSE-FT (Wortsman et al. 2022): the weights (1 - alpha) * start + alpha * fine-tuned, scored for each alpha.

Kumar et al. 2022 discuss it as the other way to keep the pretrained features' robustness; the curve from
alpha = 0 (the model before fine-tuning) to alpha = 1 (after) shows how much OOD accuracy FT and LP-FT trade for
ID accuracy along the way. Batch-norm statistics are interpolated with the weights.
"""
from __future__ import annotations

import torch
from torch import nn

from study.data import Pipeline
from study.methods.evaluation import Scoring


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s state (the starting point of fine-tuning)."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def interpolate(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], alpha: float) -> dict:
    """(1 - alpha) * start + alpha * end for floating-point entries; integer ones (batch counters) from ``end``."""
    return {name: torch.lerp(start[name].to(value), value, alpha) if value.is_floating_point() else value
            for name, value in end.items()}


@torch.no_grad()
def wise_curve(model: nn.Module, start: dict[str, torch.Tensor], data: Pipeline, scoring: Scoring,
               scored: dict[float, dict] | None = None) -> dict[float, dict[str, dict[str, float]]]:
    """Every split scored at each of ``scoring.wise_alphas``' interpolations of ``start`` and ``model``'s current
    weights; ``model`` keeps its own. ``scored`` holds the results of alphas already evaluated (the two ends,
    which are exactly the two models)."""
    scored = scored or {}
    end = snapshot(model)
    curve = {}
    for alpha in scoring.wise_alphas:
        if alpha in scored:
            curve[alpha] = scored[alpha]
            continue
        model.load_state_dict(interpolate(start, end, alpha))
        curve[alpha] = scoring.splits(model, data)
    model.load_state_dict(end)
    return curve

"""Linear probing: L2-regularised multinomial logistic regression on frozen, cached features.

The paper fits sklearn's ``LogisticRegression(lbfgs)`` on features scaled by one scalar mean and std of the train
features. This is the same model solved in torch with full-batch L-BFGS:

    minimise  mean_i CE(W x_i + b, y_i) + l2/2 * ||W||^2     (the bias is not penalised)

which is sklearn's objective with ``C = 1 / (l2 * n_train)``. Solving a sweep of L2 values from strong to weak,
each warm-started from the last, costs little more than one solve.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from study.data import ID_VAL, TRAIN
from study.methods.evaluation import EpochResult, check_finite, restrict
from study.methods.metrics import score, score_splits
from study.methods.features import Features


@dataclass
class LinearHead:
    """Logits = features @ weight.T + bias, on the backbone's raw (unscaled) features."""

    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias

    @property
    def norm(self) -> float:
        return self.weight.norm().item()

    def install(self, model: nn.Module) -> None:
        """Copy this head into the model's classifier (timm's ``get_classifier()``)."""
        classifier = model.get_classifier()
        with torch.no_grad():
            classifier.weight.copy_(self.weight)
            classifier.bias.copy_(self.bias)


def fit_logistic_regression(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, *,
                            init: tuple[torch.Tensor, torch.Tensor] | None = None, max_iter: int = 1000,
                            tolerance: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise mean CE + l2/2 ||W||^2 over (W, b) by L-BFGS; returns (W [C, D], b [C])."""
    weight = torch.zeros(num_classes, x.shape[1], dtype=x.dtype) if init is None else init[0].clone()
    bias = torch.zeros(num_classes, dtype=x.dtype) if init is None else init[1].clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, tolerance_grad=tolerance,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return weight.detach(), bias.detach()


def to_l2(kind: str, values: Sequence[float], features: Features) -> list[float]:
    """L2 strengths from ``("l2", values)`` or from sklearn's ``("C", values)``: l2 = 1 / (C * n_train)."""
    if kind == "l2":
        return list(values)
    n = len(features[TRAIN][1])
    return [1.0 / (c * n) for c in values]


def scalar_standardizer(train_features: torch.Tensor) -> tuple[float, float]:
    """One mean and one std over all train feature entries, as the paper's LP scales its features."""
    return train_features.mean().item(), train_features.std().item()


def _to_raw(weight: torch.Tensor, bias: torch.Tensor, mean: float, std: float) -> LinearHead:
    """Fold the scalar standardisation into the head, so it applies to raw features."""
    return LinearHead(weight / std, bias - weight.sum(1) * mean / std)


def lp_sweep(features: Features, l2_values: Sequence[float], num_classes: int, *,
             max_iter: int = 1000) -> list[tuple[float, LinearHead]]:
    """Fit one head per L2 value, from the strongest to the weakest, each warm-started from the previous."""
    x, y = features[TRAIN]
    mean, std = scalar_standardizer(x)
    scaled = (x - mean) / std
    heads, init = [], None
    for l2 in sorted(l2_values, reverse=True):
        init = fit_logistic_regression(scaled, y, num_classes, l2, init=init, max_iter=max_iter)
        heads.append((l2, _to_raw(*init, mean, std)))
    return heads


def best_head(features: Features, sweep: list[tuple[float, LinearHead]]) -> tuple[float, LinearHead]:
    """The first maximum of ID-val accuracy along the sweep (strong to weak L2), as the paper picks it."""
    x, y = features[ID_VAL]
    accuracies = [score(head.logits(x), y)["acc"] for _, head in sweep]
    return sweep[accuracies.index(max(accuracies))]


def linear_probe(features: Features, *, l2: float, num_classes: int, max_iter: int = 1000,
                 class_subsets: dict[str, tuple[int, ...]] | None = None) -> Iterator[EpochResult]:
    """LP as a method: solve for one L2 strength and report every split once (epoch 1).

    ``class_subsets`` restricts the predictions on splits that cover only some classes (see ``restrict``)."""
    class_subsets = class_subsets or {}
    (l2, head), = lp_sweep(features, [l2], num_classes, max_iter=max_iter)
    train_x, train_y = features[TRAIN]
    train_loss = torch.nn.functional.cross_entropy(head.logits(train_x), train_y)
    check_finite(train_loss, epoch=1)
    evaluated = {split: (restrict(head.logits(x), class_subsets.get(split)), y)
                 for split, (x, y) in features.items() if split != TRAIN}
    splits = score_splits({s: l for s, (l, _) in evaluated.items()}, {s: y for s, (_, y) in evaluated.items()}, ID_VAL)
    yield EpochResult(epoch=1, splits=splits, train_loss=train_loss.item(), extras={"head_norm": head.norm},
                      state={"head": {"weight": head.weight, "bias": head.bias}})

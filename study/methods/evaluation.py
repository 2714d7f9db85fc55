"""What a method yields after every epoch, and how a model is scored on every split."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from study import metric_keys
from study.data import ID_VAL, Pipeline
from study.methods.distributed import gather_strided, rank_and_world
from study.methods.metrics import (CLASSIFICATION, SplitMeter, fit_temperature, keeps_correct, meter, pack_correct,
                                    scaled)


class Diverged(RuntimeError):
    """The training loss became non-finite; the trial ends as ``diverged`` and is never selected."""

    def __init__(self, epoch: int, loss: float):
        super().__init__(f"training loss became {loss} in epoch {epoch}")
        self.epoch, self.loss = epoch, loss


@dataclass
class EpochResult:
    """Accuracy (percent) and mean loss per split after ``epoch`` epochs; epoch 0 is the starting point.

    ``state`` is everything needed to resume after this epoch (model, optimizer, schedule), or None. ``wise`` (the
    last epoch of FT-like methods) maps each WiSE-FT alpha to the interpolated model's metrics per split.
    """

    epoch: int
    splits: dict[str, dict[str, float]]
    train_loss: float | None = None
    extras: dict[str, float] = field(default_factory=dict)
    state: dict | None = None
    wise: dict[float, dict[str, dict[str, float]]] | None = None

    def flat(self) -> dict[str, float]:
        """One flat dict: ``{"epoch": 1, "id_val/acc": ..., "train/loss": ..., "extra/head_norm": ..., ...}``
        (``study.metric_keys``)."""
        return {"epoch": self.epoch, **metric_keys.encode(self.splits, self.train_loss, self.extras, self.wise)}


def check_finite(loss: torch.Tensor, epoch: int) -> None:
    if not torch.isfinite(loss):
        raise Diverged(epoch, loss.item())


def restrict(logits: torch.Tensor, classes: tuple[int, ...] | None) -> torch.Tensor:
    """The logits of a split that covers only ``classes`` (ImageNet-R, -A): every other class is masked out, so it
    is never predicted and takes no probability."""
    if not classes:
        return logits
    mask = torch.full((logits.shape[1],), float("-inf"), device=logits.device)
    mask[list(classes)] = 0.0
    return logits + mask


def prepare_model(model: nn.Module, device) -> nn.Module:
    """Move ``model`` to ``device``, channels-last as the pipeline's image batches: convolutions run ~1.5x faster
    that way on CPU, and use tensor cores on GPU."""
    return model.to(device, memory_format=torch.channels_last)


@torch.no_grad()
def evaluate(model: nn.Module, data: Pipeline, *, batch_size: int = 512,
             reference: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
             pretrained: bool = False) -> dict[str, dict[str, float]]:
    """Score ``model`` on every evaluation split of ``data``'s benchmark (model left in eval mode); see ``metrics``.

    ``reference`` holds the pretrained encoder's features of each split (the LP feature cache): with it, the
    change of the features is measured too. ``pretrained``: ``model``'s encoder is still the pretrained one, so
    its features are ``reference``'s and only its head is run on them (no pass over the images). With several
    ranks each scores its share of a split and the sums are reduced: every rank returns the metrics of the whole
    split.
    """
    model.eval()
    rank, world = rank_and_world()
    head, benchmark, device = model.get_classifier(), data.benchmark, data.device
    calibrate = benchmark.task == CLASSIFICATION
    results, temperature = {}, None
    for split in [ID_VAL, *(name for name in benchmark.eval_splits if name != ID_VAL)]:  # ID val fits the temperature
        scores, calibrated, kept, hits = meter(benchmark.task, device), SplitMeter(device), [], []
        before = reference[split][0][rank::world] if reference and split in reference else None
        batches = (_cached(reference[split], rank, world, batch_size, device) if pretrained and before is not None
                   else _encoded(model, data, split, batch_size))
        seen = 0
        for features, labels in batches:
            logits = restrict(head(features).float(), benchmark.class_subsets.get(split))
            original = None if before is None else before[seen:seen + len(labels)].to(device, non_blocking=True)
            scores.update(logits, labels, features.float(), original)
            if calibrate and temperature is None:
                kept.append((logits, labels))
            elif calibrate:
                calibrated.update(logits / temperature, labels)
            if calibrate and keeps_correct(split):
                hits.append(logits.argmax(1) == labels)
            seen += len(labels)
        if calibrate and temperature is None:
            temperature = fit_temperature(torch.cat([l for l, _ in kept]), torch.cat([y for _, y in kept]))
            for logits, labels in kept:
                calibrated.update(logits / temperature, labels)
        results[split] = scores.result() | (scaled(calibrated.result()) if calibrate else {})
        if hits:
            results[split]["correct"] = pack_correct(gather_strided(torch.cat(hits), len(benchmark.splits[split])))
    if calibrate:
        results[ID_VAL]["temperature"] = temperature
    return {split: results[split] for split in benchmark.eval_splits}


def _encoded(model: nn.Module, data: Pipeline, split: str, batch_size: int):
    """(features, labels) of this rank's share of ``split``, through ``model``'s encoder."""
    for images, labels in data.split(split, batch_size=batch_size):
        yield model.forward_head(model.forward_features(images), pre_logits=True), labels


def _cached(stored: tuple[torch.Tensor, torch.Tensor], rank: int, world: int, batch_size: int, device):
    """The same from the cached features: this rank's every ``world``-th example, as ``Pipeline.split`` gives it."""
    features, labels = stored[0][rank::world], stored[1][rank::world]
    for start in range(0, len(labels), batch_size):
        yield (features[start:start + batch_size].to(device, non_blocking=True),
               labels[start:start + batch_size].to(device, non_blocking=True))


@dataclass(frozen=True)
class Scoring:
    """How a trained model is scored after every epoch, bound once per trial.

    ``reference`` (the cached features of the model's starting encoder, split -> (features, labels)) makes every
    evaluation measure the change of the features too, and epoch 0, where the encoder is still that one, is
    scored from it without a pass over the images; ``wise_alphas``: the WiSE-FT interpolations scored after the
    last epoch; ``batch_size``: the evaluation's batches.
    """

    reference: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    wise_alphas: Sequence[float] = ()
    batch_size: int = 512

    def splits(self, model: nn.Module, data: Pipeline, pretrained: bool = False) -> dict[str, dict[str, float]]:
        return evaluate(model, data, batch_size=self.batch_size, reference=self.reference, pretrained=pretrained)

    def epoch(self, model: nn.Module, data: Pipeline, epoch: int, train_loss: float | None,
              extras: dict) -> EpochResult:
        """``model`` after ``epoch`` epochs: every split, and its head's norm."""
        head_norm = model.get_classifier().weight.norm().item()
        return EpochResult(epoch=epoch, splits=self.splits(model, data, pretrained=epoch == 0),
                           train_loss=train_loss, extras={**extras, "head_norm": head_norm})

"""What is measured on every split after every epoch, accumulated batch by batch (and summed across ranks).

- ``acc`` (%) and ``loss`` (mean cross-entropy, which is also the NLL);
- calibration: ``ece`` (%, 15 equal-width confidence bins) and ``brier`` (mean squared error of the probabilities),
  and the bins themselves for reliability diagrams: ``reliability``, 45 sums (15 counts, then 15 confidence sums,
  then 15 correct counts), which add up across seeds and splits;
- the same four after temperature scaling (``loss_ts``, ``ece_ts``, ``brier_ts``, ``reliability_ts``): one
  temperature, fitted on ID val by minimising its NLL, divides the logits of every split (Tomihari & Sato 2024:
  LP-FT's large head norm costs calibration, and this restores it); ID val's row also holds the ``temperature``;
- feature distortion (Kumar et al. 2022), where the pretrained encoder's features of the same images are given:
  ``feature_change``, the mean squared change of the features relative to their mean squared norm,
  sum ||f - f0||^2 / sum ||f0||^2, and ``feature_cosine``, the mean cosine distance 1 - cos(f, f0).

Each OOD val split also keeps which of its examples were classified correctly (``correct``, packed bits as base64
text): the small-OOD-val selection rule scores a configuration on a few labelled examples per class of it, chosen
after the study, without another pass over the images.

A regression benchmark (the theory's toy with the squared loss) is scored by ``mse``, the mean squared error of its
one output, which is also its ``loss``; it has no calibration. The model search maximises ``search_score``.
"""
from __future__ import annotations

import base64

import numpy as np
import torch
import torch.nn.functional as F

from study.methods.distributed import all_reduce_sum

ECE_BINS = 15
CALIBRATION = ("loss", "ece", "brier", "reliability")
TEMPERATURES = torch.logspace(-1.5, 1.5, 241)  # 0.03 ... 32, about 3% apart
CLASSIFICATION, REGRESSION = "classification", "regression"  # what a benchmark asks: its ``task``


class SplitMeter:
    """Sums over one split's batches; ``result()`` reduces them across ranks and returns the metrics."""

    def __init__(self, device="cpu"):
        # correct, summed loss, count, summed Brier, summed ||f - f0||^2, summed ||f0||^2, summed cosine distance
        self.sums = torch.zeros(7, dtype=torch.float64, device=device)
        self.bins = torch.zeros(3, ECE_BINS, dtype=torch.float64, device=device)  # count, confidence, correct
        self.has_reference = False

    def update(self, logits: torch.Tensor, labels: torch.Tensor, features: torch.Tensor | None = None,
               reference: torch.Tensor | None = None) -> "SplitMeter":
        probabilities = logits.softmax(1)
        confidence, predicted = probabilities.max(1)
        correct = (predicted == labels).double()
        brier = (probabilities - F.one_hot(labels, logits.shape[1])).pow(2).sum(1)
        self.sums[:4] += torch.stack([correct.sum(), F.cross_entropy(logits, labels, reduction="sum").double(),
                                      torch.tensor(len(labels), dtype=torch.float64, device=logits.device),
                                      brier.sum().double()])
        bin_of = (confidence * ECE_BINS).long().clamp(max=ECE_BINS - 1)
        for row, values in enumerate((torch.ones_like(correct), confidence.double(), correct)):
            self.bins[row].index_add_(0, bin_of, values)
        return self._feature_change(features, reference)

    def _feature_change(self, features: torch.Tensor | None, reference: torch.Tensor | None) -> "SplitMeter":
        if reference is not None:
            self.has_reference = True
            features, reference = features.double(), reference.double()
            self.sums[4:] += torch.stack([(features - reference).pow(2).sum(), reference.pow(2).sum(),
                                          (1 - F.cosine_similarity(features, reference, dim=1)).sum()])
        return self

    def result(self, across_ranks: bool = True) -> dict[str, float | list[float]]:
        """The metrics; ``across_ranks`` sums every rank's share first (each rank scored part of the split)."""
        sums, bins = (all_reduce_sum(self.sums), all_reduce_sum(self.bins)) if across_ranks else (self.sums, self.bins)
        correct, loss, count, brier, change, norm, cosine = sums.tolist()
        _, confidence, hits = bins
        ece = ((hits - confidence).abs().sum() / count).item()
        out = {"acc": 100.0 * correct / count, "loss": loss / count, "ece": 100.0 * ece, "brier": brier / count,
               "reliability": bins.flatten().tolist()}
        return out | self._change_result(sums)

    def _change_result(self, sums: torch.Tensor) -> dict[str, float]:
        _, _, count, _, change, norm, cosine = sums.tolist()
        return {"feature_change": change / norm, "feature_cosine": cosine / count} if self.has_reference else {}


class SquaredErrorMeter(SplitMeter):
    """A regression split's sums: ``mse`` (= ``loss``) of the one output, and the feature change."""

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, features: torch.Tensor | None = None,
               reference: torch.Tensor | None = None) -> "SquaredErrorMeter":
        squared = (outputs.squeeze(1).double() - targets.double()).pow(2).sum()
        self.sums[1:3] += torch.stack([squared, torch.tensor(len(targets), dtype=torch.float64,
                                                             device=outputs.device)])
        return self._feature_change(features, reference)

    def result(self, across_ranks: bool = True) -> dict[str, float]:
        sums = all_reduce_sum(self.sums) if across_ranks else self.sums
        mse = (sums[1] / sums[2]).item()
        return {"mse": mse, "loss": mse} | self._change_result(sums)


def meter(task: str, device="cpu") -> SplitMeter:
    return SquaredErrorMeter(device) if task == REGRESSION else SplitMeter(device)


def training_loss(task: str, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss training minimises: cross-entropy, or the squared error of the one output (the theorem's)."""
    if task == REGRESSION:
        return F.mse_loss(outputs.squeeze(1), labels)
    return F.cross_entropy(outputs, labels)


def search_score(splits: dict[str, dict[str, float]]) -> float:
    """What model search maximises, from one split's metrics: accuracy, or minus the squared error (regression)."""
    return splits["acc"] if "acc" in splits else -splits["mse"]


def score(logits: torch.Tensor, labels: torch.Tensor, task: str = CLASSIFICATION) -> dict[str, float]:
    """Every metric of one split's logits (or a regression's outputs), all held by this process."""
    return meter(task, logits.device).update(logits, labels).result(across_ranks=False)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T minimising the NLL of ``logits / T`` on these examples (ID val), summed over ranks. A grid
    search: every rank evaluates the same grid on its share and the sums are reduced, so no logits are gathered."""
    nll = torch.stack([F.cross_entropy(logits / t, labels, reduction="sum") for t in TEMPERATURES.tolist()])
    return TEMPERATURES[all_reduce_sum(nll.double()).argmin()].item()


def scaled(metrics: dict[str, float]) -> dict[str, float]:
    """The calibration metrics of temperature-scaled logits, renamed ``<name>_ts``."""
    return {f"{name}_ts": metrics[name] for name in CALIBRATION}


def keeps_correct(split: str) -> bool:
    """Whether a split's per-example correctness is kept: the OOD val splits'."""
    return split.endswith("_val") and split != "id_val"


def pack_correct(correct: torch.Tensor) -> str:
    """Per-example correctness (booleans, in the split's order) as base64 text of packed bits."""
    return base64.b64encode(np.packbits(correct.cpu().numpy().astype(bool)).tobytes()).decode("ascii")


def unpack_correct(text: str, count: int) -> np.ndarray:
    """``pack_correct``'s booleans back, the split's ``count`` of them."""
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:count].astype(bool)


def score_splits(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], val_split: str,
                 task: str = CLASSIFICATION) -> dict[str, dict[str, float]]:
    """``score`` of every split, with temperature scaling fitted on ``val_split`` (for logits held in memory)."""
    if task == REGRESSION:
        return {split: score(logits[split], labels[split], task) for split in logits}
    temperature = fit_temperature(logits[val_split], labels[val_split])
    out = {split: score(logits[split], labels[split]) | scaled(score(logits[split] / temperature, labels[split]))
           | ({"correct": pack_correct(logits[split].argmax(1) == labels[split])} if keeps_correct(split) else {})
           for split in logits}
    out[val_split]["temperature"] = temperature
    return out

"""What a method yields after every epoch, and how a model is scored on every split."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from study.data import Benchmark, loader
from study.methods.distributed import all_reduce_sum, rank_and_world


class Diverged(RuntimeError):
    """The training loss became non-finite; the trial ends as ``diverged`` and is never selected."""

    def __init__(self, epoch: int, loss: float):
        super().__init__(f"training loss became {loss} in epoch {epoch}")
        self.epoch, self.loss = epoch, loss


@dataclass
class EpochResult:
    """Accuracy (percent) and mean loss per split after ``epoch`` epochs; epoch 0 is the starting point.

    ``state`` is everything needed to resume after this epoch (model, optimizer, schedule), or None.
    """

    epoch: int
    splits: dict[str, dict[str, float]]
    train_loss: float | None = None
    extras: dict[str, float] = field(default_factory=dict)
    state: dict | None = None

    def flat(self) -> dict[str, float]:
        """One flat dict: ``{"epoch": 1, "id_val/acc": ..., "id_val/loss": ..., "train/loss": ..., "extra/...": ...}``."""
        out = {"epoch": self.epoch}
        for split, values in self.splits.items():
            out.update({f"{split}/{name}": value for name, value in values.items()})
        if self.train_loss is not None:
            out["train/loss"] = self.train_loss
        out.update({f"extra/{name}": value for name, value in self.extras.items()})
        return out


def check_finite(loss: torch.Tensor, epoch: int) -> None:
    if not torch.isfinite(loss):
        raise Diverged(epoch, loss.item())


def score(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy in percent and mean cross-entropy of one split's logits."""
    return {"acc": 100.0 * (logits.argmax(1) == labels).float().mean().item(),
            "loss": F.cross_entropy(logits, labels).item()}


def restrict(logits: torch.Tensor, classes: tuple[int, ...] | None) -> torch.Tensor:
    """The logits of a split that covers only ``classes`` (ImageNet-R, -A): every other class is masked out, so it
    is never predicted and takes no probability."""
    if not classes:
        return logits
    mask = torch.full((logits.shape[1],), float("-inf"), device=logits.device)
    mask[list(classes)] = 0.0
    return logits + mask


def to_device(images: torch.Tensor, device) -> torch.Tensor:
    """Image batches go channels-last: convolutions run ~1.5x faster that way on CPU, and use tensor cores on GPU."""
    memory_format = torch.channels_last if images.dim() == 4 else torch.contiguous_format
    return images.to(device, memory_format=memory_format, non_blocking=True)


def prepare_model(model: nn.Module, device) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format ``to_device`` gives its inputs."""
    return model.to(device, memory_format=torch.channels_last)


@torch.no_grad()
def evaluate(model: nn.Module, benchmark: Benchmark, *, batch_size: int = 512, device="cpu",
             num_workers: int = 0) -> dict[str, dict[str, float]]:
    """Score ``model`` on every evaluation split of ``benchmark`` (model left in eval mode).

    With several ranks each scores its share of a split and the counts are summed: every rank returns the
    accuracy and loss of the whole split.
    """
    model.eval()
    shard = rank_and_world()
    results = {}
    for split in benchmark.eval_splits:
        counts = torch.zeros(3, dtype=torch.float64, device=device)  # correct, summed loss, examples
        for images, labels in loader(benchmark.splits[split], batch_size, num_workers=num_workers, shard=shard):
            images, labels = to_device(images, device), labels.to(device, non_blocking=True)
            logits = restrict(model(images).float(), benchmark.class_subsets.get(split))
            counts[0] += (logits.argmax(1) == labels).sum()
            counts[1] += F.cross_entropy(logits, labels, reduction="sum")
            counts[2] += len(labels)
        correct, loss, total = all_reduce_sum(counts).tolist()
        results[split] = {"acc": 100.0 * correct / total, "loss": loss / total}
    return results

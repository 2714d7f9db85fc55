"""Full fine-tuning: every weight, head included, by SGD with momentum on a cosine schedule.

Reads top to bottom: set up the optimizer and schedule, score the starting point (epoch 0), then per epoch train
on the ID train split and score every split. Each yielded result carries the state needed to resume after it.
Under ``torch.distributed`` (several ranks) the same loop runs data-parallel: each rank trains on its share of
every global batch of ``batch_size`` examples and scores its share of every split; the counts are summed.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Iterator

import torch
from torch import nn

from study.data import TRAIN, Pipeline
from study.methods.distributed import all_reduce_sum, data_parallel, rank_and_world
from study.methods.evaluation import EpochResult, Scoring, check_finite, prepare_model
from study.methods.metrics import training_loss
from study.methods.spd import SelectiveProjectionDecay
from study.methods.wise import snapshot, wise_curve


def make_optimizer(kind: str, parameters: list, *, lr: float, momentum: float, weight_decay: float,
                   strength: float = 0.0) -> torch.optim.Optimizer:
    """SGD with momentum (``sgd``), AdamW (``adamw``), or Adam with selective projection decay (``spd``)."""
    if kind == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    if kind == "spd":
        return SelectiveProjectionDecay(parameters, lr=lr, strength=strength)
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)


def fine_tune(model: nn.Module, data: Pipeline, *, lr: float, epochs: int, batch_size: int, momentum: float = 0.0,
              weight_decay: float = 0.0, seed: int = 0, freeze_bn: bool = False, resume: dict | None = None,
              extras: dict | None = None, scoring: Scoring = Scoring(), precision: str = "fp32",
              schedule: str = "epoch", optimizer: str = "sgd", strength: float = 0.0,
              penalty: Callable[[nn.Module], torch.Tensor] | None = None) -> Iterator[EpochResult]:
    """Fine-tune ``model`` (its head already set) for ``epochs`` epochs on ``data`` (its device, its workers),
    yielding one result per epoch.

    ``weight_decay`` is FT's L2 strength. ``freeze_bn`` keeps batch-norm layers in eval mode (LP-FT's FT stage).
    ``resume`` is the ``state`` of an earlier result: training continues after that epoch, as if never stopped.
    ``scoring`` says how every epoch is scored (``Scoring``: the feature change from its reference features, the
    evaluation batches); with its ``wise_alphas``, the last result also holds the WiSE-FT curve between the
    starting weights and the final ones (``result.wise``). Only parameters that require gradients are trained
    (LoRA freezes the rest).
    ``precision="bf16"`` trains under bfloat16 autocast (evaluation stays in float32, so metrics are comparable).
    ``schedule``: the cosine learning-rate schedule stepped once per epoch over ``epochs`` (the official code's
    ``CosineAnnealingLR(T_max=epochs)``: epoch 1 at ``lr``), or per batch (``"step"``) over every step.
    ``optimizer``: SGD with ``momentum`` (Kumar et al.'s), or AdamW (``"adamw"``: Tomihari & Sato's, for language
    models; ``momentum`` unused), both with ``weight_decay``; or ``"spd"``, Adam with selective projection decay of
    ``strength`` toward the starting weights (``study.methods.spd``). ``penalty(model)``, if given, is added to the
    training loss (L2-SP's distance to the pretrained weights: ``study.methods.parts``).
    """
    extras = dict(extras or {})
    rank, world = rank_and_world()
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the {world} data-parallel workers")
    device = data.device
    prepare_model(model, device)
    steps_per_epoch = len(data.benchmark.splits[TRAIN]) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {batch_size} is more than the {len(data.benchmark.splits[TRAIN])} training "
                         "examples, so an epoch has no full batch; use a smaller batch_size")
    score = partial(scoring.epoch, model, data)
    start_weights = snapshot(model) if scoring.wise_alphas else None  # before a resume overwrites them
    scored_ends = {}  # WiSE-FT's alpha 0 is the start and alpha 1 the final model: their scores are reused
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = make_optimizer(optimizer, trainable, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               strength=strength)
    per_step = schedule == "step"
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                        T_max=epochs * steps_per_epoch if per_step else epochs)
    start = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        cosine.load_state_dict(resume["schedule"])
        start, extras = resume["epoch"], resume.get("extras", extras)
    else:
        first = score(0, None, extras)
        scored_ends[0.0] = first.splits
        yield first

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    trained = data_parallel(model, device)  # the same module, whose gradients DDP averages across ranks
    for epoch in range(start + 1, epochs + 1):
        # 1. LP-FT trains with batch norm in eval mode: the pretrained running statistics stay as they are.
        trained.train(not freeze_bn)
        # 2. The shuffle (and every augmentation) is seeded per epoch, so a resumed trial sees the batches an
        #    uninterrupted one would.
        loss_sum = torch.zeros((), device=device)
        for images, labels in data.train(batch_size=batch_size // world, seed=seed * 100_003 + epoch):
            with autocast:
                loss = training_loss(data.benchmark.task, trained(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            (loss + penalty(model) if penalty is not None else loss).backward()
            optimizer.step()
            if per_step:
                cosine.step()
            loss_sum += loss.detach()
        if not per_step:
            cosine.step()
        train_loss = all_reduce_sum(loss_sum) / (steps_per_epoch * world)
        check_finite(train_loss, epoch)  # one sync per epoch; a NaN stays NaN through the sum
        result = score(epoch, train_loss.item(), extras)
        if epoch == epochs and scoring.wise_alphas:
            scored_ends[1.0] = result.splits
            result.wise = wise_curve(model, start_weights, data, scoring, scored=scored_ends)
        result.state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": cosine.state_dict(), "epoch": epoch, "extras": extras}
        yield result


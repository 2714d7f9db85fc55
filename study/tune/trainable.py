"""The Ray Tune trainable: a plain function of its config that reports one flat dict per epoch.

It only wraps ``study.methods.run.run_method``: picks the device and thread count, resumes from Tune's latest
checkpoint if there is one, reports every epoch's metrics with a checkpoint, and turns a divergence into a final
``{"diverged": 1}`` report so the study goes on.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch
from ray import tune

from study.config import StudyConfig
from study.methods import Diverged
from study.methods.run import run_method
from study.tune.spaces import TrialSpec

STATE_FILE = "state.pt"


def train_trial(config: dict, study: StudyConfig) -> None:
    spec = TrialSpec.of(config, study.seeds)
    torch.set_num_threads(max(1, int(study.resources.cpus_per_trial)))
    device = "cuda" if study.resources.gpus_per_trial > 0 and torch.cuda.is_available() else "cpu"
    resume = _load_state(tune.get_checkpoint())
    best = resume.pop("best_id_val_acc", -math.inf) if resume else -math.inf
    results = run_method(spec.method, spec.hparams, benchmark=study.benchmark, backbone=study.backbone, seed=spec.seed,
                         head_l2=study.lpft_head_l2, cache_dir=study.cache_dir, device=device, resume=resume)
    try:
        for result in results:
            metrics = result.flat()
            if result.epoch > 0:
                best = max(best, metrics["id_val/acc"])
            metrics["best_id_val_acc"] = max(best, 0.0)
            if result.state is None:
                tune.report(metrics)
                continue
            with tempfile.TemporaryDirectory() as folder:
                torch.save({**result.state, "best_id_val_acc": best}, Path(folder) / STATE_FILE)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
    except Diverged as error:
        tune.report({"epoch": error.epoch, "diverged": 1, "best_id_val_acc": max(best, 0.0)})


def _load_state(checkpoint) -> dict | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / STATE_FILE, weights_only=True)

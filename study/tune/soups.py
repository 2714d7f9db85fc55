"""Soups of a finished sweep, without retraining: for every fine-tuning method and seed, the uniform and the greedy
soup (``study.methods.soups``) of its trials that share a starting point, scored on every split.

Members are the trials that finished every epoch, read from their last checkpoint (the final weights Ray keeps);
trials share a starting point when they have the same method, seed and structure (LoRA's rank and scale, surgical
fine-tuning's block group: what the weights' shapes depend on), whatever their learning rate, epochs or
regularisation. Each (method, seed, structure) is cooked by one Ray task with an FT worker's resources (its GPU,
where the study has them); the rows go to ``soups.parquet`` in the study folder (``study.results``), which
``study report`` reads.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import ray

from study.config import StudyConfig
from study.data import ID_VAL, TRAIN
from study.methods.catalog import METHODS, prepare_model_for, typed
from study.methods.soups import GREEDY, UNIFORM, greedy_soup, uniform_soup
from study.results import hparam_columns

TRAINING = {"lr", "epochs", "batch_size", "momentum", "weight_decay", "sp_alpha", "sp_beta", "strength"}


def groups(table: pd.DataFrame) -> list[dict]:
    """The soups to cook: per (method, seed, structure) of the fine-tuning methods, its finished trials (two or more:
    a soup of one is that trial) with their final ID-val accuracy and hyper-parameters."""
    finished = table[(table["outcome"] == "finished") & (table["split"] == ID_VAL)]
    out = []
    for method, rows in finished.groupby("method", sort=False):
        if method not in METHODS or not METHODS[method].trains_encoder:
            continue
        names = [name for name in hparam_columns(rows) if rows[name].notna().all()]
        last = rows.loc[rows.groupby("trial_id")["epoch"].idxmax()]
        last = last[last["epoch"] == last["epochs"]] if "epochs" in last else last
        structure = [name for name in names if name not in TRAINING]
        for key, members in last.groupby(["seed", *structure], sort=False):
            if len(members) < 2:
                continue
            key = key if isinstance(key, tuple) else (key,)
            out.append({"method": method, "seed": int(key[0]),
                        "structure": typed(method, dict(zip(structure, key[1:]))),
                        "members": [{"trial_id": row.trial_id, "id_val": float(row.accuracy),
                                     "hparams": typed(method, {name: getattr(row, name) for name in names})}
                                    for row in members.itertuples()]})
    return out


def cook(study: StudyConfig, prepared, table: pd.DataFrame, experiment: str, progress: bool = False) -> pd.DataFrame:
    """Every soup of the study's sweep (its Ray experiment ``experiment``), one Ray task per group, as table
    rows."""
    from ray.tune import ExperimentAnalysis

    checkpoints = {trial.trial_id: trial.checkpoint for trial in ExperimentAnalysis(experiment).trials
                   if trial.checkpoint is not None}
    work = [group for group in groups(table) if all(m["trial_id"] in checkpoints for m in group["members"])]
    _, cpus, gpus = study.resources.of_encoder_trials()
    task = ray.remote(_cook_group).options(num_cpus=cpus, num_gpus=gpus, max_retries=study.max_failures)
    pending = [task.remote(study, prepared.benchmark, prepared.features_file, group,
                           {m["trial_id"]: checkpoints[m["trial_id"]] for m in group["members"]})
               for group in work]
    rows = [row for result in ray.get(pending) for row in result]
    return pd.DataFrame(rows)


def _cook_group(study: StudyConfig, benchmark, features_file: str, group: dict, checkpoints: dict) -> list[dict]:
    """The Ray task: both soups of one group, scored on every split."""
    import torch

    from study.data.pipeline import Pipeline
    from study.data.protocol import inputs_for
    from study.methods.evaluation import Scoring, prepare_model
    from study.methods.features import load_features
    from study.models import create_backbone
    from study.tune.prepare import device_of

    device = device_of(len(ray.get_gpu_ids()))
    torch.set_num_threads(max(1, int(study.resources.cpus_per_worker)))
    torch.manual_seed(group["seed"])
    backbone = create_backbone(study.backbone, num_classes=benchmark.num_classes, cache_dir=study.cache_dir,
                               weights=study.backbone_weights)
    model = backbone.model
    prepare_model_for(group["method"], model, dict(group["members"][0]["hparams"]))
    inputs = inputs_for(benchmark.name, backbone, study.transforms, benchmark.protocol)
    benchmark.set_transform(inputs.test)
    scoring = Scoring(reference=load_features(features_file))
    full = Pipeline(benchmark, device=device, normalize=inputs.normalize)
    val_only = Pipeline(dataclasses.replace(benchmark, splits={k: benchmark.splits[k] for k in (TRAIN, ID_VAL)}),
                        device=device, normalize=inputs.normalize)

    def state_of(trial_id: str) -> dict:
        with checkpoints[trial_id].as_directory() as folder:
            return torch.load(Path(folder) / "state.pt", map_location="cpu", weights_only=True)["model"]

    def scored(state: dict, data: Pipeline) -> dict:
        model.load_state_dict(state)
        return scoring.splits(prepare_model(model, device), data)

    members = [(m["trial_id"], m["id_val"]) for m in group["members"]]
    kept, greedy, _ = greedy_soup(members, state_of, lambda state: scored(state, val_only)["id_val"]["acc"])
    every = [name for name, _ in members]
    rows = []
    for kind, state, names in ((UNIFORM, uniform_soup(every, state_of), every), (GREEDY, greedy, kept)):
        for split, metrics in scored(state, full).items():
            rows.append({"study": study.name, "method": group["method"], "seed": group["seed"], "kind": kind,
                         "structure": json.dumps(group["structure"], sort_keys=True), "members": json.dumps(names),
                         "size": len(names), "of": len(every), "split": split, "accuracy": metrics.get("acc"),
                         "loss": metrics.get("loss"), "ece": metrics.get("ece")})
    return rows

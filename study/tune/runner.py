"""One study from config to report: prepare the caches, build the Tuner, run it, write and log the report."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import yaml

from study.analysis.report import write_report
from study.cache import cache_root
from study.config import StudyConfig
from study.data import create_benchmark
from study.methods import cached_features
from study.models import create_backbone
from study.results import read_table
from study.tracking import StudyTracker, flatten
from study.tune.spaces import SEARCH_METRIC, SEARCH_MODE, build_search, trial_count

RAY_DIR = "ray"


class StudyExists(FileExistsError):
    pass


def absolute(study: StudyConfig) -> StudyConfig:
    """Trials run in other folders (and on other nodes): make every path absolute first."""
    return dataclasses.replace(study, results_dir=study.results_dir.resolve(), cache_dir=cache_root(study.cache_dir))


def prepare(study: StudyConfig, progress: bool = True) -> dict[str, str]:
    """Generate the data, pretrain the backbone and extract LP features now, once, with progress bars."""
    data = create_benchmark(study.benchmark, cache_dir=study.cache_dir)
    encoder = create_backbone(study.backbone, num_classes=data.num_classes, cache_dir=study.cache_dir,
                              progress=progress)
    data.set_transform(encoder.transform)
    if {"lp", "lpft"} & set(study.methods):
        cached_features(encoder, data, cache_dir=study.cache_dir, progress=progress)
    return {"benchmark": data.fingerprint, "backbone": encoder.fingerprint}


def manifest(study: StudyConfig, fingerprints: dict[str, str]) -> dict:
    """What a result needs to be reproduced: versions, code revision, data and backbone hashes, seeds."""
    packages = ("torch", "torchvision", "timm", "ray", "mlflow", "optuna", "pyarrow", "lpft-study")
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"study": study.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
            "host": platform.node(), "packages": versions, "git_sha": _git_sha(), "fingerprints": fingerprints,
            "seeds": list(study.seeds)}


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def init_ray() -> None:
    # A checkpoint per epoch from short trials trips Tune's "snapshotting too often" warning: expected here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)


def build_tuner(study: StudyConfig, callbacks: list):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from study.tune.trainable import train_trial

    param_space, search_alg, num_samples = build_search(study)
    resources = {"cpu": study.resources.cpus_per_trial, "gpu": study.resources.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(train_trial, study=study), resources)
    scheduler = None
    if study.search.scheduler == "asha":
        max_epochs = max((v for p in study.methods.values() if "epochs" in p for v in p["epochs"].values), default=1)
        scheduler = ASHAScheduler(time_attr="epoch", metric=SEARCH_METRIC, mode=SEARCH_MODE, max_t=max_epochs,
                                  grace_period=study.search.grace_epochs)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=num_samples, scheduler=scheduler,
                                    reuse_actors=True,  # saves a worker start-up (~3 s of imports) per trial
                                    max_concurrent_trials=study.resources.max_concurrent_trials or None),
        run_config=tune.RunConfig(name=RAY_DIR, storage_path=str(study.study_dir), callbacks=callbacks, verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )


def run_study(study: StudyConfig, *, progress: bool = True) -> tuple[dict, str]:
    """Run ``study`` to the end; returns the report (JSON object and Markdown). Finished work is never lost."""
    from study.tune.callbacks import MlflowTrialsCallback, ProgressCallback, ResultsTableCallback

    study = absolute(study)
    if study.study_dir.exists() and any(study.study_dir.iterdir()):
        raise StudyExists(f"{study.study_dir} already holds a study named {study.name!r}; pass --name NEW_NAME "
                          f"for a new one, or `study report {study.study_dir}` to see its results")
    study.study_dir.mkdir(parents=True, exist_ok=True)
    (study.study_dir / "config.yaml").write_text(yaml.safe_dump(study.to_dict(), sort_keys=False))
    fingerprints = prepare(study, progress)
    (study.study_dir / "manifest.json").write_text(json.dumps(manifest(study, fingerprints), indent=2))

    tracker = StudyTracker.for_study(study)
    tracker.start_parent(flatten(study.to_dict()), {"study": study.name, **{f"fingerprint.{k}": v for k, v in
                                                                           fingerprints.items()}})
    init_ray()
    callbacks = [ResultsTableCallback(study.study_dir, study.name, study.seeds),
                 MlflowTrialsCallback(tracker, study.seeds), ProgressCallback(trial_count(study), study.seeds, progress)]
    status = "FAILED"
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the report (and `--json` stays JSON)
            build_tuner(study, callbacks).fit()
        status = "FINISHED"
    finally:
        for name in ("config.yaml", "manifest.json"):
            tracker.client.log_artifact(tracker.parent_id, str(study.study_dir / name))
        if status == "FINISHED":
            report, text, folder = write_report(study.study_dir, read_table(study.study_dir))
            tracker.log_artifacts(folder, "report")
        tracker.end_parent(status)
    return report, text

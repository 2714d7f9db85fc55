"""The Ray Tune trainable: a plain function of its config that reports one flat dict per epoch.

It only wraps ``study.methods.run.run_method``. A trial of one worker runs the method in the Tune trial's own
process. A trial of several workers launches a Ray Train ``TorchTrainer`` inside the Tune trial: its workers get
their own PACK placement group, train with DDP (gloo on CPU, NCCL on GPU) and report through
``TuneReportCallback``. Both paths run ``report_epochs``: resume from the latest checkpoint if there is one,
report every epoch's metrics with a checkpoint, and turn a divergence into a final ``{"diverged": 1}`` report so
the study goes on.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import ray
import torch
from ray import tune

from study.config import StudyConfig
from study.data import ID_VAL, Benchmark
from study.data.pipeline import default_workers
from study.methods import Diverged
from study.methods.catalog import get_method
from study.methods.metrics import search_score
from study.methods.run import run_method
from study.tune.prepare import Prepared, device_of
from study.tune.spaces import SEARCH_METRIC, TrialSpec

STATE_FILE = "state.pt"
TRAIN_DIR = "train"  # under the study's storage root: one Ray Train run per multi-worker trial, named by trial id


def train_trial(config: dict, study: StudyConfig, prepared: Prepared) -> None:
    spec = TrialSpec.of(config, study.seeds)
    workers, cpus, gpus = study.resources.of_trial(spec.method)
    if workers > 1:
        _fit_with_workers(config, study, prepared, workers, cpus, gpus)
        return
    try:
        with _system_metrics(study, tune.get_context().get_trial_id()):
            report_epochs(spec, study, benchmark_of(prepared), prepared.features_file, device=device_of(gpus),
                          threads=cpus, report=tune.report, checkpoint=tune.get_checkpoint(),
                          checkpoint_type=tune.Checkpoint)
    finally:
        if get_method(spec.method).trains_encoder:  # an LP trial frees next to nothing; the collection costs 0.2 s
            release_freed_memory()


_BENCHMARK: dict[str, Benchmark] = {}


def benchmark_of(prepared: Prepared) -> Benchmark:
    """The study's benchmark, taken from Ray's object store once per worker process: Tune reuses the process for
    trial after trial, and deserialising even the embedded benchmark costs 0.2 s, more than an LP trial."""
    key = prepared.benchmark.hex()
    if key not in _BENCHMARK:
        _BENCHMARK.clear()
        _BENCHMARK[key] = ray.get(prepared.benchmark)
    return _BENCHMARK[key]


def release_freed_memory() -> None:
    """Hand the memory the trial freed back to the system. Tune reuses this process for the next trial, and
    glibc's malloc keeps what a trial freed (its models, optimiser state, checkpoints) in its heaps, so without
    this a worker's resident memory climbs trial after trial (measured on the text study: 3.1 GiB against 1.8).
    The full collection walks every object the process holds (torch's, ~370,000): 0.2 s on 2 cores."""
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # a libc other than glibc (musl) has no malloc_trim
            ctypes.CDLL("libc.so.6").malloc_trim(0)


WORST = -1e30  # the search score before any epoch, or of a diverged trial: finite, below every real one

# A multi-worker trial only drives its TorchTrainer, whose workers reserve their own placement group. Ray refuses
# an empty request, and any CPU fraction would leave a node one CPU short for the workers: reserve memory only.
DRIVER_RESOURCES = {"cpu": 0, "memory": 256 * 2**20}


def trial_resources(study: StudyConfig, config: dict) -> dict:
    """What a Tune trial reserves."""
    workers, cpus, gpus = study.resources.of_trial(TrialSpec.of(config, study.seeds).method)
    return DRIVER_RESOURCES if workers > 1 else {"cpu": cpus, "gpu": gpus}


def report_epochs(spec: TrialSpec, study: StudyConfig, data: Benchmark, features_file: str, *, device,
                  threads: float, report: Callable, checkpoint, checkpoint_type: type | None) -> None:
    """Run one trial's method on the study's benchmark and features and ``report`` every epoch; ``checkpoint``
    (Tune's or Train's) resumes it.

    Each epoch's state is reported as a ``checkpoint_type`` (Tune's or Train's class), or not at all if None.
    Every report names the trial's ``device``.
    """
    torch.set_num_threads(max(1, int(threads)))
    resume = _load_state(checkpoint)
    best = resume.pop(SEARCH_METRIC, WORST) if resume else WORST
    workers = study.resources.loader_workers
    results = run_method(spec.method, spec.hparams, data=data, features_file=features_file,
                         backbone=study.backbone, seed=spec.seed, lp_grid=study.lp_grid, head=study.lpft_head,
                         cache_dir=study.cache_dir, weights=study.backbone_weights, device=device, resume=resume,
                         num_workers=default_workers(data, threads) if workers < 0 else workers,
                         wise_alphas=study.wise_alphas, precision=study.precision, schedule=study.schedule,
                         optimizer=study.optimizer,
                         transforms=study.transforms)
    try:
        for result in results:
            metrics = result.flat() | {"device": str(device)}
            if result.epoch > 0:
                best = max(best, search_score(result.splits[ID_VAL]))
            metrics[SEARCH_METRIC] = best
            if result.state is None or checkpoint_type is None:
                report(metrics)
                continue
            with tempfile.TemporaryDirectory() as folder:
                torch.save({**result.state, SEARCH_METRIC: best}, Path(folder) / STATE_FILE)
                report(metrics, checkpoint=checkpoint_type.from_directory(folder))
    except Diverged as error:
        report({"epoch": error.epoch, "diverged": 1, SEARCH_METRIC: best})


def _fit_with_workers(config: dict, study: StudyConfig, prepared: Prepared, workers: int, cpus: float,
                      gpus: float) -> None:
    from ray import train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    per_worker = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"trial": config, "study": study, "prepared": prepared,
                           "trial_id": tune.get_context().get_trial_id()},
        scaling_config=train.ScalingConfig(num_workers=workers, use_gpu=gpus > 0, resources_per_worker=per_worker,
                                           placement_strategy="PACK"),
        # The run's name is the trial's id, never a timestamp: a retried or restored trial finds its checkpoints.
        run_config=train.RunConfig(name=tune.get_context().get_trial_id(),
                                   storage_path=f"{study.storage_root}/{TRAIN_DIR}",
                                   callbacks=[TuneReportCallback()],
                                   failure_config=train.FailureConfig(max_failures=study.max_failures),
                                   checkpoint_config=train.CheckpointConfig(num_to_keep=1)),
    )
    trainer.fit()


def _worker_loop(loop_config: dict) -> None:
    """One DDP worker of a multi-worker trial; rank 0 writes the checkpoints, every rank reports."""
    from ray import train
    from ray.train.torch import get_device

    study: StudyConfig = loop_config["study"]
    spec = TrialSpec.of(loop_config["trial"], study.seeds)
    _, cpus, _ = study.resources.of_trial(spec.method)
    rank, prepared = train.get_context().get_world_rank(), loop_config["prepared"]
    with _system_metrics(study, loop_config["trial_id"], node=f"rank{rank}"):
        report_epochs(spec, study, benchmark_of(prepared), prepared.features_file, device=get_device(),
                      threads=cpus, report=train.report, checkpoint=train.get_checkpoint(),
                      checkpoint_type=train.Checkpoint if rank == 0 else None)


def _system_metrics(study: StudyConfig, trial_id: str, node: str | None = None):
    """With ``study.system_metrics``, MLflow's system metrics of this worker's node go to the trial's child run
    (created by the driver's callback before the trial starts); a store this node cannot reach only warns."""
    if not study.system_metrics:
        return contextlib.nullcontext()
    from study.tracking import StudyTracker, system_metrics  # MLflow, imported in a trial only when asked for

    try:
        tracker = StudyTracker.for_study(study)
        tracker.parent_id = tracker.existing_parent()
        return system_metrics(tracker.uri, tracker.trial_run(trial_id), node)
    except Exception as error:  # noqa: BLE001 - metrics of the machine must never stop a trial
        warnings.warn(f"system metrics of trial {trial_id} are not logged: {type(error).__name__}: {error}")
        return contextlib.nullcontext()


def _load_state(checkpoint) -> dict | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / STATE_FILE, weights_only=True)

"""What a study does once, before its trials: the benchmark listed, the LP features extracted where the GPUs are.

The driver may sit on a CPU-only head node, so it only builds the benchmark (lists its files, or loads the embedded
one) and puts it in Ray's object store, from where every trial reads it instead of listing the trees again. The
backbone is built, and the features extracted, by one Ray task that reserves what an FT worker does (its GPU, where
the study asks for GPUs). The task writes the features into the cache, which is why, on a cluster of several
nodes, the cache must be a folder every node mounts; its progress bars are streamed to the driver.
"""
from __future__ import annotations

import contextlib
import io
import os
import queue
import sys
import threading
from dataclasses import dataclass

import ray
import torch

from study.config import StudyConfig
from study.data import Benchmark
from study.data.pipeline import default_workers
from study.methods.features import prepare_features


@dataclass(frozen=True)
class Prepared:
    """What every trial of a study reads: the benchmark (an object-store reference), the features file, and what
    the extraction recorded (``prepare_features``'s dict: fingerprints, device, node, seconds)."""

    benchmark: ray.ObjectRef
    features_file: str
    extraction: dict

    @property
    def fingerprints(self) -> dict[str, str]:
        return self.extraction["fingerprints"]


def prepare(study: StudyConfig, benchmark: Benchmark, *, progress: bool = True) -> Prepared:
    """Put ``benchmark`` in the object store and run the extraction task; raise its error if it fails (bad weights:
    the same one-line error as a local failure)."""
    _, cpus, gpus = study.resources.of_encoder_trials()
    gpus = max(gpus, study.resources.lp_gpus)  # a GPU wherever the study asks for GPUs
    # max_calls=1: the worker exits after the extraction, so the backbone it built (and on a GPU its CUDA context)
    # does not stay in memory beside the trials
    task = ray.remote(max_calls=1)(_extract).options(num_cpus=cpus, num_gpus=gpus, max_retries=study.max_failures)
    workers = study.resources.loader_workers
    workers = default_workers(benchmark, cpus) if workers < 0 else workers
    reference = ray.put(benchmark)
    extraction = None
    try:
        for item in task.remote(study, reference, workers, progress):
            item = ray.get(item)
            if isinstance(item, str):
                sys.stderr.write(item)
                sys.stderr.flush()
            else:
                extraction = item
    except ray.exceptions.RayTaskError as error:
        raise error.cause from None
    return Prepared(reference, extraction["file"], extraction)


def device_of(gpus: float) -> str:
    """The device of a trial (or task) that Ray gave ``gpus`` GPUs: the GPU it sees, else the CPU."""
    return "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"


def _extract(study: StudyConfig, benchmark: Benchmark, workers: int, progress: bool):
    """The Ray task: ``prepare_features`` on this worker's device, in a thread, while its stderr (the progress
    bars) is yielded to the driver as it is written; then the result."""
    device = device_of(len(ray.get_gpu_ids()))
    if device == "cpu":  # nothing of the study runs beside its extraction: on a CPU, it takes every core
        torch.set_num_threads(os.cpu_count() or 1)
    written: queue.Queue = queue.Queue()
    outcome = {}

    def work():
        try:
            with contextlib.redirect_stderr(_QueueStream(written)):
                outcome["value"] = prepare_features(benchmark, study.backbone, transforms=study.transforms,
                                                    cache_dir=study.cache_dir,
                                                    weights=study.backbone_weights, device=device,
                                                    num_workers=workers, progress=progress)
        except BaseException as error:  # re-raised below, in the task itself
            outcome["error"] = error
        finally:
            written.put(None)

    threading.Thread(target=work, daemon=True).start()
    while (text := written.get()) is not None:
        yield text
    if "error" in outcome:
        raise outcome["error"]
    yield {**outcome["value"], "node": ray.util.get_node_ip_address(), "pid": os.getpid()}


class _QueueStream(io.TextIOBase):
    """A text stream that hands every write to a queue (tqdm redraws its bar with '\\r', so writes are passed on
    as they come, not by line)."""

    def __init__(self, sink: queue.Queue):
        self.sink = sink

    def write(self, text: str) -> int:
        self.sink.put(text)
        return len(text)

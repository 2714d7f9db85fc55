"""The tests' helpers: the `study` command run as a user runs it (in a subprocess) or in this process (sharing one
local Ray), and the project's pieces put together as a study would (a backbone, a pipeline, features, one Ray-free
trial). Fixtures are in conftest.py."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch

from study.data import Benchmark, Pipeline, create_benchmark
from study.methods import load_features
from study.methods.catalog import METHODS
from study.methods.features import prepare_features
from study.methods.run import run_method
from study.models import create_backbone

ROOT = Path(__file__).resolve().parents[1]
DIVERGING_LR = 1e5  # the smoke study's (conftest.py) FT learning rate that diverges
TOY_LP_GRID = [1e-4, 1e-3, 1e-2, 1e-1]  # the toy study's (conftest.py) LP strengths
FINE_TUNING = {"ft", "lpft", "lora", "lplora"}  # the smoke study's methods that train the encoder


def sgd(**hparams) -> dict:
    """``fine_tune``'s hyper-parameters: the study's defaults (the method catalog's), with ``hparams`` over them."""
    return {**METHODS["ft"].defaults(), **hparams}


def study_command(*args) -> list[str]:
    return [sys.executable, "-m", "study.cli", *map(str, args)]


def study_here(*argv) -> dict:
    """`study ARGV... --json` run by ``study.cli.main`` in this process; returns the printed report.

    The first study of the session starts a local Ray and every later one reuses it (a Ray start costs seconds of
    CPU). That Ray's processes inherit this environment as it is when it starts, so it is set here first: trials
    last seconds, so ``--system-metrics`` samples every second."""
    from study.cli import main

    os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*map(str, argv), "--json", *(["--no-progress"] if argv[0] != "report" else [])])
    sys.stderr.write(err.getvalue())  # what the study warned of, for a test's capsys (and pytest's failure report)
    assert code == 0, err.getvalue()[-3000:]
    return json.loads(out.getvalue())


def run_study_here(config: str, results: Path, *args) -> dict:
    """`study run search_spaces/CONFIG --results-dir RESULTS ARGS...` in this process (see ``study_here``)."""
    return study_here("run", ROOT / "search_spaces" / config, "--results-dir", results, *args)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """`mlflow server` on 127.0.0.1:port over one SQLite store, which can be stopped and started again. Its job
    runner (eight worker processes for MLflow's GenAI jobs, 2 GiB) is off: a tracking server needs none."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.process = folder, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "MlflowServer":
        log = self.folder / "server.log"  # a file, not a pipe: a pipe nobody reads fills up and blocks the server
        with log.open("a") as stderr:
            self.process = subprocess.Popen(
                ["mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
                 "--artifacts-destination", str(self.folder / "artifacts")],
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return self
            except OSError:
                assert self.process.poll() is None, log.read_text()[-2000:]
                time.sleep(0.3)
        raise AssertionError("mlflow server did not come up")

    def stop(self) -> None:
        """Gone at once, with every process it started, as a crashed or rebooted server is (a graceful stop waits
        seconds for idle connections)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def make_backbone(cache_dir, num_classes: int, seed: int = 0):
    torch.manual_seed(seed)
    return create_backbone("glyphnet", num_classes=num_classes, cache_dir=cache_dir)


def pipeline(benchmark: Benchmark, backbone, **options) -> Pipeline:
    """``benchmark``'s batches as ``backbone`` takes them."""
    return Pipeline(benchmark, normalize=backbone.normalize, **options)


def features_of(benchmark: Benchmark, backbone: str, cache_dir):
    """(the features file, the features) of ``backbone`` on ``benchmark``, extracted once into the cache."""
    file = prepare_features(benchmark, backbone, cache_dir=cache_dir)["file"]
    return file, load_features(file)


def run_trial(method: str, hparams: dict, *, benchmark: str, backbone: str, cache_dir, **options) -> list:
    """One trial of ``method`` as a study runs it (its benchmark built, its features extracted first), Ray-free."""
    data = create_benchmark(benchmark, cache_dir=cache_dir)
    file, _ = features_of(data, backbone, cache_dir)
    return list(run_method(method, hparams, data=data, features_file=file, backbone=backbone, cache_dir=cache_dir,
                           **options))

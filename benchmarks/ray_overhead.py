"""Ray's overhead per trial: one FT trial as the bare method loop, through Tune, and through Train with 2 workers.

    python benchmarks/ray_overhead.py [--epochs 4]

The same work each time (one FT trial of the embedded benchmark, warm caches): the bare loop is timed in this
process; the Tune and Train runs are `study run` subprocesses, timed whole (driver start, Ray start, trial) and by
the trial's own `time_total_s` in Ray's result.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from study.data import create_benchmark
from study.methods.features import prepare_features
from study.methods.run import run_method

ROOT = Path(__file__).resolve().parents[1]


def study_run(epochs: int, workers: int) -> tuple[float, float]:
    """(wall time of `study run`, the trial's time_total_s) for one FT trial."""
    with tempfile.TemporaryDirectory() as results:
        command = [sys.executable, "-m", "study.cli", "run", str(ROOT / "search_spaces" / "smoke.yaml"),
                   "--results-dir", results, "--name", "overhead", "--no-progress",
                   "--set", f"methods={{ft: {{lr: [0.03], epochs: {epochs}}}}}",
                   "--set", f"resources.workers_per_trial={workers}", "--set", "wise_alphas=[]"]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - start
        (result,) = Path(results, "overhead", "ray").glob("*/result.json")
        last = json.loads(result.read_text().splitlines()[-1])
        return wall, last["time_total_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    hparams = {"lr": 0.03, "epochs": args.epochs}
    data = create_benchmark("glyphs")
    trial = dict(data=data, features_file=prepare_features(data, "glyphnet")["file"], backbone="glyphnet", seed=0)
    list(run_method("ft", {**hparams, "epochs": 1}, **trial))  # warm caches
    torch.set_num_threads(1)  # as a 1-CPU trial runs
    start = time.perf_counter()
    list(run_method("ft", hparams, **trial))
    bare = time.perf_counter() - start
    tune_wall, tune_trial = study_run(args.epochs, 1)
    train_wall, train_trial = study_run(args.epochs, 2)
    print(f"machine: {platform.node()}, torch {torch.__version__}; one FT trial, {args.epochs} epochs\n")
    print("| path | trial time | whole command | overhead vs bare loop (trial) |\n|---|---|---|---|")
    print(f"| bare method loop, 1 thread | {bare:.1f} s | | |")
    print(f"| Tune trial, 1 CPU | {tune_trial:.1f} s | {tune_wall:.1f} s | {tune_trial - bare:+.1f} s "
          f"({100 * (tune_trial - bare) / bare:+.0f}%) |")
    print(f"| Tune trial + Train, 2 gloo workers x 1 CPU | {train_trial:.1f} s | {train_wall:.1f} s | "
          f"{train_trial - bare:+.1f} s ({100 * (train_trial - bare) / bare:+.0f}%) |")


if __name__ == "__main__":
    main()

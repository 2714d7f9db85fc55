"""The paper's grid size on 2 cores: a study of >= 1,000 cheap trials (LP over 50 strengths x 20 seeds on the
embedded benchmark's cached features), its marginal cost per trial, the driver's memory per trial, and the time of
`study report` on it.

    python benchmarks/many_trials.py                     # 100 and 1,000 trials, then `study report` on the big one
    python benchmarks/many_trials.py --profile 300       # where a driver's time goes, per trial (cProfile)

Each study runs as a user runs it (`study run`, in a subprocess, warm cache). The marginal cost is the difference of
the two studies' wall times over the difference of their trial counts (Ray's start, the extraction and the report
cancel out); the driver's memory per trial is the slope of its RSS against the trials its table holds, sampled every
half second. Goals: <= 0.1 s and <= 0.1 MiB per trial, `study report` <= 10 s.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"


def overrides(seeds: int) -> list[str]:
    return ["--set", "methods={lp: {l2: {logspace: [-6, 1, 50]}}}", "--set", f"seeds={list(range(seeds))}",
            "--set", "benchmark=glyphs", "--set", "resources.lp_cpus=0.5"]


def timed(name: str, seeds: int, results: Path) -> tuple[float, float]:
    """(wall seconds, the driver's RSS growth per trial in MiB) of one study."""
    command = [sys.executable, "-m", "study.cli", "run", str(SMOKE), "--name", name, "--results-dir", str(results),
               "--no-progress", "--json", *overrides(seeds)]
    start, samples = time.perf_counter(), []
    parts = results / name / "results.parquet"
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as child:
        driver = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                done = len(list(parts.glob("*.parquet"))) if parts.is_dir() else 0
                samples.append((done, driver.memory_info().rss / 2**20))
            except psutil.Error:
                pass
            time.sleep(0.5)
    elapsed = time.perf_counter() - start
    if child.returncode:
        sys.exit(f"the study failed (exit {child.returncode}): {' '.join(command)}")
    points = np.array([point for point in samples if point[0] > 0])
    slope = float(np.polyfit(points[:, 0], points[:, 1], 1)[0]) if len(points) > 2 else float("nan")
    return elapsed, slope


def profile(trials: int, results: Path) -> None:
    """The driver's own time per trial, by where it goes (Tune, the results table, MLflow, the progress bar)."""
    from study.cli import main

    profiler = cProfile.Profile()
    profiler.enable()
    main(["run", str(SMOKE), "--name", "profiled", "--results-dir", str(results), "--no-progress", "--json",
          *overrides(trials // 50)])
    profiler.disable()
    stats = pstats.Stats(profiler)
    groups = {"results table (Parquet parts)": ("callbacks.py", "on_trial_result"),
              "MLflow child runs": ("callbacks.py", "MlflowTrialsCallback"),
              "Tune's own loggers (JSON, CSV, TensorBoard)": ("logger", "on_trial_result")}
    print(f"driver, {trials} trials: {stats.total_tt:.1f} s of CPU in the driver's main thread")
    stats.sort_stats("cumulative").print_stats(25)
    del groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", type=int, metavar="TRIALS", help="profile one study's driver instead")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "results"
        if args.profile:
            profile(args.profile, results)
            return
        small, small_slope = timed("small", 2, results)
        large, large_slope = timed("large", 20, results)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "study.cli", "report", str(results / "large"), "--json"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        report = time.perf_counter() - start
    marginal = (large - small) / (1000 - 100)
    print("| study | trials | wall time | driver RSS per trial |\n|---|---|---|---|")
    print(f"| LP, 50 strengths x 2 seeds | 100 | {small:.0f} s | {small_slope:.3f} MiB |")
    print(f"| LP, 50 strengths x 20 seeds | 1,000 | {large:.0f} s | {large_slope:.3f} MiB |")
    print(f"\nmarginal cost: {marginal:.3f} s per trial (goal <= 0.1); `study report` on 1,000 trials: {report:.1f} s "
          "(goal <= 10)")


if __name__ == "__main__":
    main()

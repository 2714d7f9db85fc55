"""The paper's grid size on 2 cores: a study of >= 1,000 cheap trials (LP over 50 strengths x 20 seeds on the
embedded benchmark's cached features), its marginal cost per trial, the driver's memory per trial, and the time of
`study report` on it.

    python benchmarks/many_trials.py                     # 100 and 1,000 trials, then `study report` on the big one
    python benchmarks/many_trials.py --profile 300       # where a driver's time goes, per trial (cProfile)

Each study runs as a user runs it (`study run`, in a subprocess, warm cache). The marginal cost is the difference of
the two studies' wall times over the difference of their trial counts (Ray's start, the extraction and the report
cancel out); the driver's memory per trial is the slope of its RSS against the trials its table holds, sampled every
half second, over the second half of the trials (the first holds the driver's warm-up: imports, caches filled once;
the report at the end is left out). Goals: <= 0.1 s and <= 0.1 MiB per trial, `study report` <= 10 s.
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


def timed(name: str, seeds: int, results: Path) -> tuple[float, float, float]:
    """(wall seconds, the driver's RSS growth per trial over the study's second half, its peak RSS; in MiB) of one
    study."""
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
    points = np.array(samples)
    total = points[:, 0].max()
    # past the driver's warm-up (imports, the first trials) and before its report (tables and figures, at the end)
    later = points[(points[:, 0] >= total / 2) & (points[:, 0] < total)]
    slope = float(np.polyfit(later[:, 0], later[:, 1], 1)[0]) if len(later) > 2 else float("nan")
    return elapsed, slope, float(points[:, 1].max())


# Where a driver's time can go besides the project's callbacks (each listed by itself): (a file's path ending, a function)
PLACES = {
    "waiting for the trials (ray.wait)": ("ray/_private/worker.py", "wait"),
    "Tune's loggers (JSON, CSV, TensorBoard)": ("ray/tune/logger/logger.py", "on_trial_result"),
    "Tune's experiment checkpoint": ("ray/tune/execution/tune_controller.py", "checkpoint"),
    "Tune: trial results processed": ("ray/tune/execution/tune_controller.py", "_process_trial_result"),
    "Tune: an actor reset for the next trial": ("ray/tune/execution/tune_controller.py", "_on_trial_reset"),
    "the whole Tuner.fit": ("ray/tune/tuner.py", "fit"),
    "the report": ("study/analysis/report.py", "write_report"),
}


def profile(trials: int, results: Path) -> None:
    """The driver's main thread per trial, by where it goes (Tune, the results table, MLflow, the progress bar)."""
    from study.cli import main

    profiler = cProfile.Profile()
    profiler.enable()
    main(["run", str(SMOKE), "--name", "profiled", "--results-dir", str(results), "--no-progress", "--json",
          *overrides(trials // 50)])
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"\ndriver, {trials} trials: {stats.total_tt:.1f} s in the driver's main thread (cProfile)")
    print("| where | calls | seconds | ms per trial |\n|---|---|---|---|")
    rows = [(f"{name} ({Path(file).name}:{line})", calls, cumulative)
            for (file, line, name), (_, calls, _, cumulative, _) in stats.stats.items()
            if file.endswith("study/tune/callbacks.py") and name.startswith("on_")]
    for label, (path, function) in PLACES.items():
        found = [(calls, cumulative) for (file, _, name), (_, calls, _, cumulative, _) in stats.stats.items()
                 if file.endswith(path) and name == function]
        rows.append((label, sum(c for c, _ in found), sum(s for _, s in found)))
    for label, calls, seconds in sorted(rows, key=lambda row: -row[2]):
        print(f"| {label} | {calls} | {seconds:.1f} | {1000 * seconds / trials:.0f} |")
    stats.sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", type=int, metavar="TRIALS", help="profile one study's driver instead")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="write the studies there and keep them")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    with tempfile.TemporaryDirectory() as folder:
        results = args.keep or Path(folder) / "results"
        if args.profile:
            profile(args.profile, results)
            return
        small, small_slope, small_peak = timed("small", 2, results)
        large, large_slope, large_peak = timed("large", 20, results)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "study.cli", "report", str(results / "large"), "--json"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        report = time.perf_counter() - start
    marginal = (large - small) / (1000 - 100)
    print("| study | trials | wall time | driver's peak RSS | its growth per trial, second half |\n|---|---|---|---|---|")
    print(f"| LP, 50 strengths x 2 seeds | 100 | {small:.0f} s | {small_peak:.0f} MiB | {small_slope:.3f} MiB |")
    print(f"| LP, 50 strengths x 20 seeds | 1,000 | {large:.0f} s | {large_peak:.0f} MiB | {large_slope:.3f} MiB |")
    print(f"\nmarginal cost: {marginal:.3f} s per trial (goal <= 0.1); the driver's growth: {large_slope:.3f} MiB per "
          f"trial (goal <= 0.1); `study report` on 1,000 trials: {report:.1f} s (goal <= 10)")


if __name__ == "__main__":
    main()

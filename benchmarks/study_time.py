"""Wall time and peak memory of a study (the quickstart unless --config), cold (empty cache) and warm (the cache
the cold run filled).

    python benchmarks/study_time.py                                          # the quickstart, both runs
    python benchmarks/study_time.py --warm-only                              # reuse ~/.cache/lpft-study
    python benchmarks/study_time.py --config search_spaces/text.yaml         # the text track

Runs `study run CONFIG` exactly as a user does, in a subprocess, and samples the summed resident memory of its
whole process tree (driver, Ray's GCS and raylet, trial workers) every half second. Goals on 2 cores: the
quickstart cold <= 10 min and warm <= 5 min; the text study warm <= 10 min and <= 6 GiB.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "search_spaces" / "quickstart.yaml"


def tree_memory(process: psutil.Process, pss: bool) -> tuple[int, int, list[tuple[int, str]]]:
    """(RSS, PSS) summed over the process tree (PSS 0 unless ``pss``), and each process's (RSS, name). RSS counts
    every shared page (torch's libraries, Ray's plasma store) once per process that maps it; PSS divides each shared
    page among its processes: their sum is the memory the tree takes. Reading PSS (every process's smaps) costs CPU
    the study then lacks."""
    rss = shared = 0
    members = []
    for member in [process, *process.children(recursive=True)]:
        try:
            info = member.memory_full_info() if pss else member.memory_info()
            members.append((info.rss, member.name()))
        except psutil.Error:
            continue
        rss, shared = rss + info.rss, shared + getattr(info, "pss", 0)
    return rss, shared, members


def timed_study(config: Path, name: str, results: Path, cache: Path | None, extra: list[str],
                pss: bool) -> tuple[float, int, int]:
    command = [sys.executable, "-m", "study.cli", "run", str(config), "--name", name, "--results-dir", str(results),
               "--no-progress", *extra]
    if cache is not None:
        command += ["--cache-dir", str(cache)]
    start, peak_rss, peak_pss, at_peak = time.perf_counter(), 0, 0, []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as child:
        watched = psutil.Process(child.pid)
        while child.poll() is None:
            rss, shared, members = tree_memory(watched, pss)
            if rss > peak_rss:
                peak_rss, at_peak = rss, members
            peak_pss = max(peak_pss, shared)
            time.sleep(0.5)
        table = child.stdout.read()
    elapsed = time.perf_counter() - start
    if child.returncode != 0:
        sys.exit(f"study run failed (exit {child.returncode}); rerun it by hand: {' '.join(command)}")
    print(table)
    print(f"{name}: the processes at the RSS peak: " +
          ", ".join(f"{title} {size / 2**30:.2f} GiB" for size, title in sorted(at_peak, reverse=True)))
    return elapsed, peak_rss, peak_pss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=QUICKSTART, help="the study YAML (default: the quickstart)")
    parser.add_argument("--warm-only", action="store_true", help="skip the cold run; use the default cache")
    parser.add_argument("--pss", action="store_true", help="also sum PSS (slows the study: it reads every smaps)")
    parser.add_argument("--set", action="append", default=[], help="passed on to `study run --set`")
    args = parser.parse_args()
    extra = [item for value in args.set for item in ("--set", value)]
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder:
        results, cache = Path(folder) / "results", (None if args.warm_only else Path(folder) / "cache")
        figures = []
        if not args.warm_only:
            figures.append(("cold", *timed_study(args.config, "cold", results, cache, extra, args.pss)))
        figures.append(("warm", *timed_study(args.config, "warm", results, cache, extra, args.pss)))
    print("| caches | wall time | peak memory: process tree RSS | process tree PSS |\n|---|---|---|---|")
    for label, seconds, rss, pss in figures:
        shared = f"{pss / 2**30:.2f} GiB" if args.pss else "not measured (--pss)"
        print(f"| {label} | {seconds / 60:.1f} min ({seconds:.0f} s) | {rss / 2**30:.2f} GiB | {shared} |")


if __name__ == "__main__":
    main()

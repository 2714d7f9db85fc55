"""Chaos for longer runs: a study whose trial workers are SIGKILLed at random, every few seconds, to its end; then what
a user relies on is checked: every trial ends finished (or failed after `max_failures`, with its reason), no epoch is
lost or counted twice in the results table or in MLflow.

    python benchmarks/chaos.py                                       # the smoke study's FT over 3 rates, 6 epochs
    python benchmarks/chaos.py --every 5 --config search_spaces/quickstart.yaml --set max_failures=6

The study runs as a user runs it (`study run`, its own process and Ray); the killer picks one of the driver's
`ray::ImplicitFunc` processes (a Tune trial's worker) at random. `tests/test_faults.py` does the same in short and
also checks that the disturbed trials' results equal an undisturbed run's, bit for bit.
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]


def workers(driver: psutil.Process) -> list[psutil.Process]:
    try:
        return [p for p in driver.children(recursive=True) if (p.cmdline() or [""])[0].startswith("ray::ImplicitFunc")]
    except psutil.Error:
        return []


def check(results: Path, name: str) -> tuple[list[str], dict[str, int]]:
    """(every broken promise, one line each; how many trials ended how)."""
    from study.results import read_table

    table, problems = read_table(results / name), []
    if table.duplicated(["trial_id", "epoch", "split"]).any():
        problems.append("the table holds an epoch twice")
    outcomes = table.groupby("trial_id")["outcome"].first()
    if not set(outcomes) <= {"finished", "failed", "diverged"}:
        problems.append(f"trials left {sorted(set(outcomes))}")
    for trial_id, rows in table[table["outcome"] == "finished"].groupby("trial_id"):
        epochs = sorted(rows["epoch"].unique())
        if epochs != list(range(epochs[0], epochs[-1] + 1)):
            problems.append(f"{trial_id}: epochs {epochs}")
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name).experiment_id
    (parent,) = client.search_runs([experiment], "tags.lpft_role = 'study'")
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    if sorted(run.data.tags["trial_id"] for run in children) != sorted(outcomes.index):
        problems.append("MLflow's child runs are not the table's trials")
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "id_val/acc")]
        if len(steps) != len(set(steps)):
            problems.append(f"{run.data.tags.get('trial_id')}: MLflow holds an epoch twice")
    return problems, outcomes.value_counts().to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "search_spaces" / "smoke.yaml"))
    parser.add_argument("--every", type=float, default=4.0, help="seconds between kills")
    parser.add_argument("--set", action="append", default=None, help="passed on to `study run --set`")
    args = parser.parse_args()
    overrides = args.set or ["methods={ft: {lr: [0.01, 0.03, 0.1], epochs: 6}}", "max_failures=8", "wise_alphas=[]"]
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder)
        command = [sys.executable, "-m", "study.cli", "run", args.config, "--name", "chaos", "--results-dir",
                   str(results), "--no-progress", *[item for value in overrides for item in ("--set", value)]]
        start, kills, rng = time.monotonic(), 0, random.Random(0)
        log = results / "driver.stderr"  # a file: a pipe read only at the end fills up and blocks the driver
        with log.open("w") as stderr, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr) as study:
            driver = psutil.Process(study.pid)
            while study.poll() is None:
                time.sleep(args.every)
                if found := workers(driver):
                    rng.choice(found).kill()
                    kills += 1
        err = log.read_text()
        if study.returncode:
            sys.exit(f"the study failed (exit {study.returncode}): {err[-2000:]}")
        problems, ended = check(results, "chaos")
    print(f"{kills} trial workers killed in {time.monotonic() - start:.0f} s; trials "
          + ", ".join(f"{count} {outcome}" for outcome, count in sorted(ended.items())) + "; "
          + ("every promise kept" if not problems else "broken: " + "; ".join(problems)))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

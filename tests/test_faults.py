"""Crashes never cost finished work: SIGKILL the driver and `study resume`; SIGKILL a trial's worker and watch
Ray retry it from its last epoch checkpoint. Real processes, real Ray, real MLflow store: each study's driver is a
process of its own, with a Ray of its own, killed or stopped as a user's would be; the study is then reported and
resumed from this process, on another Ray (``helpers.study_here``), as a user resumes on a new head node."""
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from mlflow.tracking import MlflowClient

from helpers import ROOT, study_command, study_here
from study.analysis.report import summary
from study.cli import main
from study.results import read_table, table_dir

FAULT_STUDY = ["--set", "seeds=[0]", "--set", "lpft_head_l2=[0.001]",
               "--set", "methods={lp: {l2: [0.001]}, lpft: {lr: [0.003], epochs: 3}}"]  # FT: the next test's
TRIALS = 2


def start_study(results: Path, name: str, *args) -> subprocess.Popen:
    """The driver in its own process group (it and the Ray it starts), its standard error written to a file
    (``stderr_of``): a pipe nobody reads while the study runs fills up with Tune's table of each failed trial, and
    the driver blocks on its next line."""
    command = study_command("run", ROOT / "search_spaces" / "smoke.yaml", "--results-dir", results, "--name", name,
                            "--no-progress", *args)
    log = results / f"{name}.stderr"
    with log.open("w") as stderr:
        driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    driver.stderr_file = log
    return driver


def stderr_of(driver: subprocess.Popen) -> str:
    return driver.stderr_file.read_text()


def trial_parts(study_dir: Path) -> dict[str, pd.DataFrame]:
    parts = {}
    for path in table_dir(study_dir).glob("*.parquet"):
        try:
            parts[path.stem] = pd.read_parquet(path)
        except (OSError, ValueError):  # replaced while we read it
            pass
    return parts


def wait_for(condition, process: subprocess.Popen, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        assert process.poll() is None, f"the study ended before the fault: {stderr_of(process)[-2000:]}"
        time.sleep(0.2)
    raise TimeoutError("the study never reached the state to inject the fault")


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the driver's whole process group, as a lost head node would, and wait for every process to go."""
    members = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    for member in members:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(members, timeout=30)


def ray_results(study_dir: Path) -> dict[str, list[dict]]:
    """Every result Ray recorded, per trial, in order (Ray's own result.json files)."""
    out: dict[str, list[dict]] = {}
    for path in (study_dir / "ray").glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            out[rows[0]["trial_id"]] = rows
    return out


def run_statuses(results: Path, name: str) -> tuple[str, list[str]]:
    """(the parent run's status, every child run's status)."""
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    parent = [run.info.status for run in runs if run.data.tags.get("lpft_role") == "study"]
    return parent[0], [run.info.status for run in runs if run.data.tags.get("lpft_role") != "study"]


def child_runs(results: Path, name: str) -> list:
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    parents = client.search_runs([experiment.experiment_id], "tags.lpft_role = 'study'")
    assert len(parents) == 1
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    return [(child, client.get_metric_history(child.info.run_id, "id_val/acc")) for child in children]


def assert_counted_once(results: Path, name: str, table: pd.DataFrame) -> None:
    assert not table.duplicated(["trial_id", "epoch", "split"]).any()
    for trial_id, rows in table.groupby("trial_id"):
        assert (rows["outcome"] == "finished").all(), trial_id
        epochs = sorted(rows["epoch"].unique())
        assert epochs == list(range(epochs[0], epochs[-1] + 1)), (trial_id, epochs)
    runs = child_runs(results, name)
    assert sorted(child.data.tags["trial_id"] for child, _ in runs) == sorted(table["trial_id"].unique())
    for child, history in runs:
        steps = [metric.step for metric in history]
        assert len(steps) == len(set(steps)), f"trial {child.data.tags['trial_id']} logged an epoch twice: {steps}"


@pytest.mark.slow
def test_a_killed_driver_resumes_with_nothing_lost_and_nothing_counted_twice(tmp_path, cache_dir):
    study_dir = tmp_path / "crash"
    driver = start_study(tmp_path, "crash", *FAULT_STUDY)

    def finished_and_running():
        parts = trial_parts(study_dir)
        finished = {t for t, part in parts.items()  # and in Ray's own record, which may lag the table
                    if (part["outcome"] == "finished").all()} & set(ray_results(study_dir))
        midway = {t for t, part in parts.items()  # the LP-FT trial past epoch 1 (LP has one epoch only)
                  if (part["outcome"] == "running").all() and part["epoch"].max() >= 1
                  and part["method"].iloc[0] != "lp"}
        return (finished, midway) if finished and midway else None

    finished, midway = wait_for(finished_and_running, driver)
    kill_group(driver)
    before = {t: part for t, part in trial_parts(study_dir).items() if t in finished}
    reported_before = ray_results(study_dir)
    assert run_statuses(tmp_path, "crash")[0] == "RUNNING", "a SIGKILLed driver ends nothing itself"
    assert main(["report", str(study_dir)]) == 0
    parent, children = run_statuses(tmp_path, "crash")
    assert parent == "KILLED" and "RUNNING" not in children, (parent, children)

    resumed = study_here("resume", study_dir)
    assert resumed["trials"] == {"total": TRIALS, "finished": TRIALS, "diverged": 0, "failed": 0}

    table = read_table(study_dir)
    assert table["trial_id"].nunique() == TRIALS
    assert_counted_once(tmp_path, "crash", table)
    reported_after = ray_results(study_dir)
    for trial_id, part in before.items():  # finished before the crash: not one more epoch, the same rows
        assert len(reported_after[trial_id]) == len(reported_before[trial_id]), trial_id
        pd.testing.assert_frame_equal(part.reset_index(drop=True),
                                      table[table["trial_id"] == trial_id].reset_index(drop=True)[part.columns])
    for trial_id in midway:  # interrupted: continued after its last checkpoint, never back to epoch 0
        epochs = [row["epoch"] for row in reported_after[trial_id] if "epoch" in row]
        assert epochs.count(0) == 1 and epochs[-1] == 3, epochs


def trial_workers(driver: subprocess.Popen) -> list[psutil.Process]:
    """The processes of the driver's own Ray that run a Tune trial."""
    return [p for p in psutil.Process(driver.pid).children(recursive=True)
            if (p.cmdline() or [""])[0].startswith("ray::ImplicitFunc")]


CHAOS = {"lr": [0.01, 0.03], "epochs": 8}  # two FT trials, eight epochs each (an epoch takes about 0.5 s)


@pytest.mark.slow
def test_chaos_workers_killed_again_and_again_then_a_stopped_study_resumes_as_if_undisturbed(tmp_path, cache_dir):
    """The faults of a preemptible cluster, in a row. A random trial worker is SIGKILLed every second or so: Ray retries
    its trial from its last epoch checkpoint. Then the driver is SIGTERMed (a scheduler's stop; Ctrl-C takes the same
    path): the runs end KILLED, the driver says how to resume, and `study resume` finishes the study. No epoch is lost
    or counted twice, in the table or in MLflow; and every trial's results are bit for bit those of the same trial run
    undisturbed (each epoch's batches are seeded by the epoch, so a resumed trial sees the batches it would have)."""
    study_dir = tmp_path / "chaos"
    driver = start_study(tmp_path, "chaos", "--set", f"methods={{ft: {CHAOS}}}".replace("'", ""),
                         "--set", "max_failures=4", "--set", "wise_alphas=[]")
    killed = []
    while len(killed) < 3:  # a random worker, each time one of the trials is past its first checkpoint
        wait_for(lambda: any(part["epoch"].max() >= 1 + len(killed) // 2 for part in trial_parts(study_dir).values()),
                 driver)
        workers = trial_workers(driver)
        if workers:
            victim = random.Random(len(killed)).choice(workers)
            victim.kill()
            killed.append(victim.pid)
        time.sleep(1.0)
    wait_for(lambda: len(ray_results(study_dir)) == 2 and all(
        any(row["pid"] not in killed for row in rows) for rows in ray_results(study_dir).values()), driver)

    reported = read_table(study_dir)
    start = time.monotonic()
    driver.send_signal(signal.SIGTERM)
    driver.wait(timeout=120)
    err = stderr_of(driver)
    if driver.returncode == 0:  # the study outran the stop: nothing left to resume, still nothing lost
        assert "study resume" not in err
    else:
        assert driver.returncode == 130 and f"study resume {study_dir}" in err, err[-3000:]
        assert time.monotonic() - start < 60, "stopped within seconds, not minutes"
        parent, children = run_statuses(tmp_path, "chaos")
        assert parent == "KILLED" and set(children) <= {"KILLED", "FINISHED"}, (parent, children)
        kept = read_table(study_dir)
        assert len(kept.merge(reported[["trial_id", "epoch", "split"]])) == len(reported), "nothing reported is lost"
        assert study_here("resume", study_dir)["trials"]["finished"] == 2
    assert run_statuses(tmp_path, "chaos") == ("FINISHED", ["FINISHED", "FINISHED"])
    table = read_table(study_dir)
    assert_counted_once(tmp_path, "chaos", table)
    assert sorted(table["epoch"].unique()) == list(range(CHAOS["epochs"] + 1))
    restarts = [row for rows in ray_results(study_dir).values() for row in rows if row["pid"] in killed]
    assert restarts, "the kills hit trials that were running"

    calm = undisturbed(table, cache_dir)
    for column in ("accuracy", "loss"):
        pd.testing.assert_frame_equal(
            table.pivot_table(index=["lr", "epoch"], columns="split", values=column),
            calm.pivot_table(index=["lr", "epoch"], columns="split", values=column), check_exact=True)
    assert summary(table)["selection"] == summary(calm)["selection"], "the same selection tables"


def undisturbed(table: pd.DataFrame, cache_dir) -> pd.DataFrame:
    """The chaos study's trials run again, Ray-free and undisturbed, in this process, one thread as a trial has:
    their results table."""
    import torch

    from study.data import create_benchmark
    from study.methods.features import prepare_features
    from study.methods.run import run_method
    from study.results import rows_from_report

    data = create_benchmark("glyphs-small", cache_dir=cache_dir)
    file = prepare_features(data, "glyphnet", cache_dir=cache_dir)["file"]
    threads, rows = torch.get_num_threads(), []
    torch.set_num_threads(1)
    try:
        for trial_id, trial in table.groupby("trial_id"):
            hparams = {"lr": float(trial["lr"].iloc[0]), "epochs": CHAOS["epochs"], "batch_size": 64, "momentum": 0.9,
                       "weight_decay": 0.0}
            for result in run_method("ft", hparams, data=data, features_file=file, backbone="glyphnet", seed=0,
                                     cache_dir=cache_dir):
                rows += [row | {"outcome": "finished"} for row in rows_from_report(
                    result.flat(), study="chaos", trial_id=trial_id, stage="search", method="ft", seed=0,
                    hparams=hparams)]
    finally:
        torch.set_num_threads(threads)
    return pd.DataFrame(rows)

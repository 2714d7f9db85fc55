"""A tracking server that goes away: a real `mlflow server` on loopback, stopped while a study runs, started again on
the same store, stopped again before the study ends. The study never fails; MLflow catches up while it runs, and
`study report` logs what the end missed; at the end MLflow holds every epoch of every trial the results table
holds."""
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import MlflowServer, run_study_here
from study.results import read_table, table_dir
from study.sync import PENDING


@pytest.fixture
def server(tmp_path):
    server = MlflowServer(tmp_path)
    yield server
    server.stop()


def parts(study_dir: Path) -> int:
    return len(list(table_dir(study_dir).glob("*.parquet"))) if table_dir(study_dir).is_dir() else 0


def test_a_study_outlives_its_tracking_server_and_mlflow_catches_up(tmp_path, cache_dir, server, monkeypatch,
                                                                    capsys):
    monkeypatch.setenv("LPFT_MLFLOW_RETRY_S", "1")
    import study.sync as sync

    monkeypatch.setattr(sync, "RETRY_S", 1.0)
    import study.tune.callbacks as callbacks

    monkeypatch.setattr(callbacks, "RETRY_S", 1.0)
    server.start()
    study_dir = tmp_path / "results" / "away"
    events = []

    def outage():
        while parts(study_dir) < 1:  # 1. the first trial reports: the server goes away
            time.sleep(0.05)
        server.stop()
        events.append("stopped")
        start = parts(study_dir)
        while parts(study_dir) < start + 2:  # 2. two more trials report without it, then it is back
            time.sleep(0.05)
        server.start()
        events.append("started")
        while not (study_dir / PENDING).exists():
            time.sleep(0.05)
        while (study_dir / PENDING).exists():  # 3. the study caught up while running; the server goes again
            time.sleep(0.05)
        events.append("caught up")
        server.stop()
        events.append("stopped again")

    watcher = threading.Thread(target=outage, daemon=True)
    watcher.start()
    methods = "methods={lp: {l2: [0.0001, 0.001, 0.01]}, ft: {lr: [0.01, 0.03, 0.1], epochs: 2}}"
    report = run_study_here("smoke.yaml", tmp_path / "results", "--name", "away", "--tracking-uri", server.url,
                            "--set", methods, "--set", "wise_alphas=[]")
    watcher.join(timeout=120)
    assert events == ["stopped", "started", "caught up", "stopped again"], events
    assert report["trials"]["finished"] == 6, "the study finished every trial"
    err = capsys.readouterr().err
    assert "does not answer" in err and "answers again" in err
    assert f"`study report {study_dir}` logs them when it answers again" in err, err[-2000:]
    assert (study_dir / PENDING).exists()

    server.start()
    from helpers import study_here

    study_here("report", study_dir)
    assert not (study_dir / PENDING).exists()
    table, client = read_table(study_dir), MlflowClient(server.url)
    experiment = client.get_experiment_by_name("away").experiment_id
    (parent,) = client.search_runs([experiment], "tags.lpft_role = 'study'")
    children = {run.data.tags["trial_id"]: run for run in client.search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")}
    assert set(children) == set(table["trial_id"]) and parent.info.status == "FINISHED"
    for trial_id, rows in table.groupby("trial_id"):
        logged = {m.step for m in client.get_metric_history(children[trial_id].info.run_id, "id_val/loss")}
        assert logged == set(rows["epoch"]), f"{trial_id}: MLflow holds every epoch the table holds"
        assert children[trial_id].info.status == "FINISHED" and children[trial_id].data.tags["outcome"] == "finished"
    assert "report/report.html" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    server.stop()

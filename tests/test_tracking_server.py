"""A study logged over HTTP to a real `mlflow server` on 127.0.0.1, read back with MlflowClient."""
import subprocess
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from helpers import free_port, run_study_cli
from study.results import read_table


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    server = subprocess.Popen(["mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                               "--artifacts-destination", str(tmp_path / "server-artifacts")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            assert server.poll() is None, server.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not come up"
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.slow
def test_a_study_logs_its_run_tree_to_a_tracking_server(mlflow_server, tmp_path, cache_dir):
    results = tmp_path / "results"
    run_study_cli("smoke.yaml", results, "--tracking-uri", mlflow_server, "--name", "served",
                  "--set", "methods={lp: {l2: [0.001]}, ft: {lr: [0.03], epochs: 1}}")
    assert not (results / "mlflow.db").exists(), "with a tracking URI nothing goes to the local store"

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("served")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.lpft_role = 'study'")
    assert parent.info.status == "FINISHED" and parent.data.params["methods.ft.epochs"] == "1"
    assert {"report/report.md", "report/summary.json"} <= {a.path for a in client.list_artifacts(parent.info.run_id,
                                                                                                  "report")}
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    table = read_table(results / "served")
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(table["trial_id"].unique())
    for child in children:
        rows = table[(table["trial_id"] == child.data.tags["trial_id"]) & (table["split"] == "id_test")]
        history = sorted(client.get_metric_history(child.info.run_id, "id_test/acc"), key=lambda m: m.step)
        assert [m.step for m in history] == sorted(rows["epoch"])
        assert [m.value for m in history] == pytest.approx(rows.sort_values("epoch")["accuracy"].tolist())

"""Cluster submission as a user does it: `ray start --head` on 127.0.0.1 with token authentication on, a real
`mlflow server` on 127.0.0.1 as the tracking server, then `ray job submit --working-dir . -- study run
search_spaces/smoke.yaml --tracking-uri http://... ...`, then the results, and the MLflow runs read back over HTTP."""
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from helpers import ROOT, MlflowServer, free_port
from study.results import read_table


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path).start()
    yield server.url
    server.stop()


@pytest.fixture
def ray_head():
    """A one-node Ray cluster of its own (own temp dir, own token, own ports: the session's local Ray, or a user's,
    holds Ray's default ones), in a session of its own so that every process it starts is stopped afterwards (its
    agents rename themselves, and `ray stop` would stop every Ray on the machine)."""
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    ports = [f"--{name}={free_port()}" for name in ("port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                    "runtime-env-agent-port", "ray-client-server-port",
                                                    "metrics-export-port")]
    start = subprocess.Popen(["ray", "start", "--head", "--node-ip-address", "127.0.0.1", *ports,
                              "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--num-cpus", "2",
                              "--temp-dir", temp_dir, "--disable-usage-stats"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    output, _ = start.communicate(timeout=120)
    try:
        assert start.returncode == 0, output[-2000:]
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getsid(process.pid) == start.pid:
                    process.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def ray_job(address: str, env: dict, command: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    """`ray job COMMAND --address ADDRESS ARGS...`, run from the repository root as a user would."""
    done = subprocess.run(["ray", "job", command, "--address", address, *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 or not check, done.stderr[-2000:]
    return done


def wait_for_job(address: str, env: dict, job_id: str, timeout: float = 480) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = ray_job(address, env, "status", job_id)
        status = (done.stdout + done.stderr).lower()  # e.g. "Job 'smoke-1' succeeded"
        for final in ("succeeded", "failed", "stopped"):
            if f"job '{job_id}' {final}" in status:
                return final
        time.sleep(2)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


@pytest.mark.slow
def test_ray_job_submit_runs_the_smoke_study_on_a_token_protected_head(ray_head, mlflow_server, tmp_path, cache_dir):
    address, env = ray_head
    refused = ray_job(address, {**env, "RAY_AUTH_TOKEN": "0" * 64}, "list", check=False)
    assert refused.returncode != 0, "a wrong token must be refused: token authentication is on"

    results = tmp_path / "results"  # one machine here; on a cluster, a path (or URI) every node shares
    submit = ["--submission-id", "smoke-1", "--working-dir", ".", "--no-wait", "--",
              "study", "run", "search_spaces/smoke.yaml", "--results-dir", str(results), "--cache-dir", str(cache_dir),
              "--tracking-uri", mlflow_server, "--no-progress",
              "--set", "methods={lp: {l2: [0.001]}, ft: {lr: [0.03], epochs: 1}}"]
    deadline = time.monotonic() + 60
    while "No available agent" in (done := ray_job(address, env, "submit", *submit, check=False)).stderr:
        assert time.monotonic() < deadline, "the head's job agent never came up"
        time.sleep(1)  # a head just started: its job agent is still starting ("please try again later")
    assert done.returncode == 0, done.stderr[-2000:]
    status = wait_for_job(address, env, "smoke-1")
    done = ray_job(address, env, "logs", "smoke-1")
    logs = done.stdout + done.stderr
    assert status == "succeeded", logs[-3000:]
    assert "Selected by ID validation" in logs

    table = read_table(results / "smoke")
    assert set(table["method"]) == {"lp", "ft"} and (table["outcome"] == "finished").all()
    assert (Path(results) / "smoke" / "report" / "report.md").is_file()
    assert not (results / "mlflow.db").exists(), "with a tracking URI nothing goes to the local store"
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("smoke")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.lpft_role = 'study'")
    assert parent.info.status == "FINISHED" and parent.data.params["methods.ft.epochs"] == "1"
    assert {"report/report.md", "report/summary.json"} <= {a.path for a in client.list_artifacts(parent.info.run_id,
                                                                                                  "report")}
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(table["trial_id"].unique())
    for child in children:
        rows = table[(table["trial_id"] == child.data.tags["trial_id"]) & (table["split"] == "id_test")]
        history = sorted(client.get_metric_history(child.info.run_id, "id_test/acc"), key=lambda m: m.step)
        assert [m.step for m in history] == sorted(rows["epoch"])
        assert [m.value for m in history] == pytest.approx(rows.sort_values("epoch")["accuracy"].tolist())

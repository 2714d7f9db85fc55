"""Cluster submission as a user does it: `ray start --head` on 127.0.0.1 with token authentication on, then
`ray job submit --working-dir . -- study run search_spaces/smoke.yaml ...`, then the results and MLflow runs."""
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

from helpers import ROOT, free_port
from study.results import read_table


@pytest.fixture
def ray_head():
    """A one-node Ray cluster of its own (own temp dir, own token), stopped and removed afterwards."""
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    subprocess.run(["ray", "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(free_port()),
                    "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--num-cpus", "2",
                    "--temp-dir", temp_dir, "--disable-usage-stats"],
                   env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        for process in psutil.process_iter(["cmdline"]):  # this cluster's processes only, not `ray stop`'s all
            if temp_dir in " ".join(process.info["cmdline"] or []):
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
def test_ray_job_submit_runs_the_smoke_study_on_a_token_protected_head(ray_head, tmp_path, cache_dir):
    address, env = ray_head
    refused = ray_job(address, {**env, "RAY_AUTH_TOKEN": "0" * 64}, "list", check=False)
    assert refused.returncode != 0, "a wrong token must be refused: token authentication is on"

    results = tmp_path / "results"  # one machine here; on a cluster, a path (or URI) every node shares
    ray_job(address, env, "submit", "--submission-id", "smoke-1", "--working-dir", ".", "--no-wait", "--",
            "study", "run", "search_spaces/smoke.yaml", "--results-dir", str(results), "--cache-dir", str(cache_dir),
            "--no-progress", "--set", "methods={lp: {l2: [0.001]}, ft: {lr: [0.03], epochs: 1}}")
    status = wait_for_job(address, env, "smoke-1")
    done = ray_job(address, env, "logs", "smoke-1")
    logs = done.stdout + done.stderr
    assert status == "succeeded", logs[-3000:]
    assert "Selected by ID validation" in logs

    table = read_table(results / "smoke")
    assert set(table["method"]) == {"lp", "ft"} and (table["outcome"] == "finished").all()
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.lpft_role = 'study'")
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert parent.info.status == "FINISHED"
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(table["trial_id"].unique())
    assert (Path(results) / "smoke" / "report" / "report.md").is_file()

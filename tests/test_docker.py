"""The container image and the cluster manifests agree with each other and with the study they run."""
import re
import shlex
from importlib import metadata

import pytest
import yaml

from helpers import ROOT
from study.cli import parser, study_from_args

DOCKER = ROOT / "docker"


def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def rayjob() -> dict:
    return yaml.safe_load((DOCKER / "rayjob.yaml").read_text())


def launcher() -> dict:
    return yaml.safe_load((DOCKER / "cluster.yaml").read_text())


def launcher_entrypoint() -> str:
    (line,) = [line for line in (DOCKER / "cluster.yaml").read_text().splitlines() if line.startswith("# entrypoint:")]
    return line.split(":", 1)[1].strip()


def study_of(entrypoint: str):
    """The StudyConfig an entrypoint `study run CONFIG ...` runs, parsed and validated as `study run` does."""
    words = shlex.split(entrypoint)
    assert words[:2] == ["study", "run"], entrypoint
    args = parser().parse_args(words[1:])
    args.config = ROOT / args.config
    return study_from_args(args)


def test_the_image_pins_the_versions_this_project_runs_with():
    base = re.search(r"ARG RAY_IMAGE=rayproject/ray:(\S+)-py(\d)(\d+)-", dockerfile())
    assert base, "the Dockerfile must build on a rayproject/ray image"
    assert base.group(1) == metadata.version("ray")
    torch_pin = re.search(r"torch==(\S+) torchvision==(\S+)", dockerfile()).groups()
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"torch=={torch_pin[0]} torchvision=={torch_pin[1]}" in ci
    assert rayjob()["spec"]["rayClusterSpec"]["rayVersion"] == metadata.version("ray")


def test_both_manifests_run_the_built_image():
    built = re.search(r"docker build .* -t (\S+) \.", dockerfile()).group(1)
    spec = rayjob()["spec"]["rayClusterSpec"]
    pods = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    assert {c["image"] for pod in pods for c in pod["template"]["spec"]["containers"]} == {built}
    assert launcher()["docker"]["image"] == built


@pytest.mark.parametrize("entrypoint", [rayjob()["spec"]["entrypoint"], launcher_entrypoint()],
                         ids=["rayjob", "cluster-launcher"])
def test_each_entrypoint_is_a_valid_study_whose_trials_fit_one_node(entrypoint):
    study = study_of(entrypoint)
    workers, cpus, gpus = study.resources.of_trial("ft")
    nodes = [({"cpu": float(g["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]),
               "gpu": float(g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0))})
             for g in rayjob()["spec"]["rayClusterSpec"]["workerGroupSpecs"]]
    nodes += [{"cpu": float(t["resources"].get("CPU", 0)), "gpu": float(t["resources"].get("GPU", 0))}
              for t in launcher()["available_node_types"].values()]
    worker_nodes = [node for node in nodes if node["gpu"] > 0]
    assert worker_nodes and gpus > 0, "the cluster manifests are for GPU workers"
    for node in worker_nodes:  # PACK placement: a whole trial on one node
        assert workers * cpus <= node["cpu"] and workers * gpus <= node["gpu"], (node, study.resources)
        assert study.resources.lp_cpus <= node["cpu"] and study.resources.lp_gpus <= node["gpu"]
    assert study.results_dir.as_posix() == "/mnt/results"


def test_every_pod_mounts_the_shared_results_volume():
    spec = rayjob()["spec"]["rayClusterSpec"]
    for pod in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        mounts = pod["template"]["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "results", "mountPath": "/mnt/results"} in mounts
    assert "-v /mnt/results:/mnt/results" in launcher()["docker"]["run_options"]

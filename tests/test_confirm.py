"""`study confirm`: the selected configurations rerun on new seeds into the same study, table and MLflow parent;
and `--system-metrics`, which the same small study turns on."""
import json

import pytest
from mlflow.tracking import MlflowClient

from helpers import run_study_here, study_here
from study.analysis.report import small_val
from study.analysis.selection import select
from study.cli import main
from study.results import read_table
from study.tune.confirm import CONFIRMED

METHODS = "methods={lp: {l2: [0.0001, 0.01]}, ft: {lr: [0.03], epochs: 1}}"


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory, cache_dir):
    """A two-method study of one seed with system metrics on (sampled every second: see ``study_here``), then
    `study confirm --seeds 2`."""
    results = tmp_path_factory.mktemp("results")
    searched = run_study_here("smoke.yaml", results, "--name", "conf", "--set", METHODS, "--set", "wise_alphas=[]",
                              "--system-metrics")
    before = read_table(results / "conf")
    return results, searched, before, study_here("confirm", results / "conf", "--seeds", 2)


def test_confirm_reruns_each_selected_configuration_on_new_seeds(confirmed):
    results, searched, before, report = confirmed
    table = read_table(results / "conf")
    added = table[~table["trial_id"].isin(before["trial_id"])]
    assert set(added["stage"]) == {"confirm"} and set(before["stage"]) == {"search"}
    small = small_val(results / "conf")  # the small-OOD-val rule's labelled examples
    picks = {method: {json.dumps(searched["chosen"][rule][method]["config"], sort_keys=True)
                      for rule in CONFIRMED} for method in ("lp", "ft")}  # one rerun where both rules agree
    assert sorted(added.groupby("trial_id")["seed"].first()) == sorted([1, 2] * sum(map(len, picks.values())))
    for method in ("lp", "ft"):
        rows = added[added["method"] == method]
        assert rows["trial_id"].nunique() == 2 * len(picks[method])
        for rule in searched["chosen"]:
            chosen, again = searched["chosen"][rule][method], report["chosen"][rule][method]
            assert (again["config"], again["epoch"]) == (chosen["config"], chosen["epoch"]), "the search still picks"
            assert report["selection"][rule][method]["id_test"]["n"] == 3, "the tables count every seed"
            assert select(table, method, rule, small).criterion == pytest.approx(chosen["criterion"])
    assert report["trials"]["total"] == searched["trials"]["total"] + added["trial_id"].nunique()


def test_confirm_adds_child_runs_under_the_same_parent(confirmed):
    results, _, before, _ = confirmed
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("conf").experiment_id
    (parent,) = client.search_runs([experiment], "tags.lpft_role = 'study'")
    assert parent.info.status == "FINISHED"
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    trials = read_table(results / "conf")["trial_id"].unique()
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(trials)
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.data.metrics["id_val.ft.id_test"] == pytest.approx(
        json.loads((results / "conf" / "report" / "summary.json").read_text())["selection"]["id_val"]["ft"]["id_test"][
            "mean"])


def test_an_unfinished_confirmation_is_continued_not_restarted(confirmed, capsys):
    results, _, _, report = confirmed
    plan_file = results / "conf" / "confirm-1.json"
    plan = json.loads(plan_file.read_text())
    assert plan["finished"] and plan["seeds"] == [1, 2]
    plan_file.write_text(json.dumps({**plan, "finished": False}))  # as a driver stopped mid-way leaves it

    assert main(["confirm", str(results / "conf"), "--seeds", "3", "--no-progress"]) == 2
    wrong = capsys.readouterr().err
    assert len(wrong.strip().splitlines()) == 1 and "--seeds 2` continues it" in wrong

    trials = read_table(results / "conf")["trial_id"].nunique()
    again = study_here("confirm", results / "conf", "--seeds", 2)
    assert read_table(results / "conf")["trial_id"].nunique() == trials, "its finished trials are not rerun"
    assert again["selection"] == report["selection"]
    assert json.loads(plan_file.read_text())["finished"]


def test_system_metrics_go_to_the_parent_and_the_trials_runs(confirmed):
    results, *_ = confirmed
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("conf").experiment_id
    (parent,) = client.search_runs([experiment], "tags.lpft_role = 'study'")
    assert "system/cpu_utilization_percentage" in parent.data.metrics
    assert parent.data.metrics["system/system_memory_usage_megabytes"] > 0
    ft = client.search_runs([experiment], "tags.method = 'ft' and tags.seed = '0'")
    assert ft and all("system/cpu_utilization_percentage" in run.data.metrics for run in ft), "each FT trial's own"


def test_a_block_shorter_than_one_sampling_interval_still_logs_its_system_metrics(tmp_path, monkeypatch):
    """MLflow's monitor logs once per interval and drops the last, unfinished one: a short trial would log none."""
    from study.tracking import system_metrics

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "30")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("short")).info.run_id
    with system_metrics(uri, run, node="rank0"):
        pass
    metrics = client.get_run(run).data.metrics
    assert metrics["system/rank0/system_memory_usage_megabytes"] > 0
    assert "system/rank0/cpu_utilization_percentage" in metrics

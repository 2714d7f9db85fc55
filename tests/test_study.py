"""The whole path on real components: smoke.yaml through a local Ray and a real MLflow store (conftest.py's
``smoke_study``), then the report."""
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from helpers import DIVERGING_LR, FINE_TUNING, ROOT, study_command
from study.analysis.report import describe_choice
from study.cli import main
from study.results import read_table, read_wise_table


def ray_results(study_dir: Path) -> dict[str, pd.DataFrame]:
    from ray import tune

    from study.tune.trainable import train_trial

    grid = tune.Tuner.restore(str(study_dir / "ray"), trainable=train_trial).get_results()
    return {result.metrics["trial_id"]: result.metrics_dataframe for result in grid}


def test_report_json_shape_and_counts(smoke_study):
    _, report = smoke_study
    assert report["study"] == "smoke"
    assert report["trials"] == {"total": 7, "finished": 6, "diverged": 1, "failed": 0}
    for rule in ("id_val", "ood_oracle"):
        assert set(report["selection"][rule]) == set(FINE_TUNING) | {"lp"}
        for splits in report["selection"][rule].values():
            assert set(splits) == {"id_test", "recolour_test", "texture_test", "ood_avg"}
            assert all(set(v) == {"mean", "std", "n"} and 0 <= v["mean"] <= 100 and v["n"] == 1
                       for v in splits.values())
    assert report["chosen"]["id_val"]["ft"]["config"]["lr"] == 0.03, "the diverged LR must never be selected"


def test_parquet_rows_match_what_ray_reported(smoke_study):
    results, _ = smoke_study
    table = read_table(results / "smoke")
    reported = ray_results(results / "smoke")
    assert set(reported) == set(table["trial_id"])
    checked = 0
    for trial_id, frame in reported.items():
        frame = frame[frame["epoch"].notna() & frame.get("id_val/acc", pd.Series(dtype=float)).notna()]
        rows = table[table["trial_id"] == trial_id]
        for _, report in frame.iterrows():
            for split in ("id_val", "id_test", "recolour_val", "recolour_test", "texture_val", "texture_test"):
                row = rows[(rows["epoch"] == report["epoch"]) & (rows["split"] == split)]
                assert len(row) == 1
                assert row["accuracy"].item() == pytest.approx(report[f"{split}/acc"])
                assert row["loss"].item() == pytest.approx(report[f"{split}/loss"])
                checked += 1
    epochs = table[table["method"] != "lp"].groupby("trial_id")["epoch"].max()
    assert checked > 0 and (epochs[epochs.index.isin(table[table.outcome == "finished"].trial_id)] == 2).all()
    assert not table.duplicated(["trial_id", "epoch", "split"]).any()


def test_every_trial_has_an_mlflow_child_run_with_epoch_metrics(smoke_study):
    results, _ = smoke_study
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    parents = client.search_runs([experiment.experiment_id], "tags.lpft_role = 'study'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.params["methods.ft.epochs"] == "2"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/summary.json", "report/report.md"} <= artifacts

    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    table = read_table(results / "smoke")
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(table["trial_id"].unique())
    for child in children:
        trial = table[table["trial_id"] == child.data.tags["trial_id"]]
        outcome = trial["outcome"].iloc[0]
        assert child.data.tags["outcome"] == outcome
        method = trial["method"].iloc[0]
        assert child.data.params["method"] == method and child.data.tags["seed"] == str(trial["seed"].iloc[0])
        shown = "lr" if method != "lp" else "l2"  # smoke.yaml varies FT's lr; every other method shows its first
        assert child.info.run_name == f"{method} {shown}={float(child.data.params[shown]):g} seed{trial['seed'].iloc[0]}"
        if method in ("lpft", "lplora"):
            assert float(child.data.tags["lp_l2"]) == trial["lp_l2"].dropna().iloc[0]
            assert "extra/lp_l2" not in child.data.metrics, "chosen once: a tag, not a per-epoch metric"
        if outcome != "finished":
            continue
        history = client.get_metric_history(child.info.run_id, "id_test/acc")
        expected = trial[trial["split"] == "id_test"].sort_values("epoch")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == expected["epoch"].tolist()
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            expected["accuracy"].tolist())


def test_report_redraws_from_the_table_without_rerunning(smoke_study, capsys):
    results, report = smoke_study
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    (parent,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id], "tags.lpft_role = 'study'")
    logged = Path(parent.info.artifact_uri.removeprefix("file://")) / "report"
    shutil.rmtree(logged)
    done = subprocess.run(study_command("report", results / "smoke", "--json"), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == report
    assert (logged / "report.html").is_file(), "`study report` logs the report to the study's MLflow parent run"
    assert parent.info.run_id in done.stderr
    assert main(["report", str(results / "smoke")]) == 0
    text = capsys.readouterr().out
    assert "| LP-FT |" in text and "Selected by OOD validation" in text


def test_an_existing_study_name_is_refused(smoke_study, capsys):
    results, _ = smoke_study
    assert main(["run", str(ROOT / "search_spaces" / "smoke.yaml"), "--results-dir", str(results)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "already holds a study named 'smoke'" in lines[0]
    assert f"study resume {results / 'smoke'}" in lines[0] and "--name" in lines[0]


def test_a_name_already_in_the_mlflow_store_is_refused(smoke_study, tmp_path, capsys):
    results, _ = smoke_study
    assert main(["run", str(ROOT / "search_spaces" / "smoke.yaml"), "--results-dir", str(tmp_path),
                 "--tracking-uri", f"sqlite:///{results / 'mlflow.db'}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "the MLflow store" in lines[0] and "already holds a study named 'smoke'" in lines[0]
    assert str(tmp_path / "smoke") not in lines[0], "never advise resuming a folder that does not exist"
    assert not (tmp_path / "smoke").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_second_study_in_the_same_root_and_store_leaves_the_first_alone(smoke_study, ddp_study):
    results, _ = smoke_study
    (files_before, runs_before), (files_after, runs_after) = ddp_study
    assert files_after == files_before and runs_after == runs_before
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    other = client.get_experiment_by_name("ddp").experiment_id
    assert len(client.search_runs([other])) == 2  # its parent and its trial
    assert set(read_table(results / "ddp")["study"]) == {"ddp"}


def test_report_analysis_comes_from_the_table(smoke_study):
    results, report = smoke_study
    table = read_table(results / "smoke")
    tuned = table[table["method"].isin(FINE_TUNING) & (table["split"] != "train")]
    assert (tuned[tuned["epoch"] == 0]["feature_change"].abs() < 1e-9).all(), "epoch 0 is the pretrained encoder"
    assert (tuned[tuned["epoch"] > 0]["feature_change"] > 0).all()
    assert set(report["analysis"]["feature_change"]) == set(FINE_TUNING), "LP's features are frozen: no entry"
    for metric in ("feature_change", "feature_cosine", "ece", "ece_ts", "brier"):
        for method, values in report["analysis"][metric].items():
            chosen = report["chosen"]["id_val"][method]
            rows = table[table["trial_id"].isin(chosen["trial_ids"]) & (table["epoch"] == chosen["epoch"])]
            assert values["id_test"]["mean"] == pytest.approx(rows[rows["split"] == "id_test"][metric].mean())
    for method, norms in report["head_norm"].items():
        chosen = report["chosen"]["id_val"][method]
        rows = table[table["trial_id"].isin(chosen["trial_ids"]) & (table["split"] == "id_val")]
        assert norms["selected"]["mean"] == pytest.approx(rows[rows["epoch"] == chosen["epoch"]]["head_norm"].mean())
    lp = report["head_norm"]["lp"]["selected"]["mean"]
    assert report["head_norm"]["lpft"]["start"]["mean"] == pytest.approx(lp), "LP-FT starts from LP's head"
    assert "start" not in report["head_norm"]["lp"] and report["head_norm"]["ft"]["start"]["mean"] < lp
    text = (results / "smoke" / "report" / "report.md").read_text()
    assert "## Feature change from the pretrained encoder" in text and "| LP | 0 (frozen)" in text
    assert "## Linear-head norm" in text


def test_report_figures_are_drawn_from_the_table(smoke_study):
    results, report = smoke_study
    folder = results / "smoke" / "report"
    html = (folder / "report.html").read_text()
    for name in FIGURES:
        assert (folder / f"{name}.png").stat().st_size > 1000 and (folder / f"{name}.csv").is_file()
        assert f"![{name}]({name}.png)" in (folder / "report.md").read_text()
        assert f'<img alt="{name}" src="data:image/png;base64,' in html, "the HTML report embeds every figure"
    assert "<table>" in html and "| LP-FT |" not in html
    points = pd.read_csv(folder / "effective_robustness.csv")
    table = read_table(results / "smoke")
    for _, point in points.iterrows():
        row = table[(table["trial_id"] == point["trial_id"]) & (table["epoch"] == point["epoch"])
                    & (table["split"] == "id_test")]
        assert row["accuracy"].item() == pytest.approx(point["id_test"])
    assert points["selected"].sum() == sum(len(c["trial_ids"]) for c in report["chosen"]["id_val"].values())
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    (parent,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id], "tags.lpft_role = 'study'")
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {f"report/{name}.png" for name in FIGURES} | {"report/report.html"} <= logged


FIGURES = ("effective_robustness", "accuracy_per_epoch", "error_per_epoch", "feature_change", "sensitivity",
           "reliability", "wise_ft")


def test_wise_ft_runs_from_the_starting_model_to_the_final_one(smoke_study):
    results, report = smoke_study
    table, wise = read_table(results / "smoke"), read_wise_table(results / "smoke")
    finished = table[(table["outcome"] == "finished") & table["method"].isin(FINE_TUNING)]
    assert set(wise["trial_id"]) == set(finished["trial_id"]) and set(wise["alpha"]) == {0.0, 0.5, 1.0}
    for trial_id, rows in finished.groupby("trial_id"):
        for alpha, epoch in ((0.0, 0), (1.0, rows["epoch"].max())):
            ends = rows[(rows["epoch"] == epoch) & (rows["split"] != "train")].set_index("split")["accuracy"]
            curve = wise[(wise["trial_id"] == trial_id) & (wise["alpha"] == alpha)].set_index("split")["accuracy"]
            assert curve.sort_index().tolist() == ends.sort_index().tolist(), (trial_id, alpha)
    assert set(report["wise"]) == set(FINE_TUNING)
    plotted = pd.read_csv(results / "smoke" / "report" / "wise_ft.csv")
    for method, curve in report["wise"].items():
        trials = report["chosen"]["id_val"][method]["trial_ids"]
        for point in curve:
            rows = wise[wise["trial_id"].isin(trials) & (wise["alpha"] == point["alpha"])]
            assert point["id_test"]["mean"] == pytest.approx(rows[rows["split"] == "id_test"]["accuracy"].mean())
            row = plotted[(plotted["method"] == method) & (plotted["alpha"] == point["alpha"])]
            assert row["ood_test_avg"].item() == pytest.approx(point["ood_avg"]["mean"])
    assert "## WiSE-FT" in (results / "smoke" / "report" / "report.md").read_text()


def test_reliability_sensitivity_and_error_figures_come_from_the_table(smoke_study):
    results, report = smoke_study
    table, folder = read_table(results / "smoke"), results / "smoke" / "report"
    bins = pd.read_csv(folder / "reliability.csv")
    for method, chosen in report["chosen"]["id_val"].items():
        rows = table[table["trial_id"].isin(chosen["trial_ids"]) & (table["epoch"] == chosen["epoch"])]
        for scaled, metric in ((False, "ece"), (True, "ece_ts")):
            ours = bins[(bins["method"] == method) & (bins["inputs"] == "ID test")
                        & (bins["temperature_scaled"] == scaled)]
            assert ours["count"].sum() == len(split_labels(table, "id_test"))
            ece = (ours["count"] * (ours["accuracy"] - ours["confidence"]).abs()).sum() / ours["count"].sum()
            assert ece == pytest.approx(rows[rows["split"] == "id_test"][metric].item(), abs=1e-6)
    sensitivity = pd.read_csv(folder / "sensitivity.csv")
    lp = sensitivity[sensitivity["method"] == "lp"]
    assert sorted(lp["l2"]) == [1e-4, 1e-3]
    for _, point in lp.iterrows():
        row = table[(table["method"] == "lp") & (table["l2"] == point["l2"]) & (table["split"] == "id_val")]
        assert point["id_val"] == pytest.approx(row["accuracy"].item())
    errors = pd.read_csv(folder / "error_per_epoch.csv")
    assert set(errors["method"]) == set(report["chosen"]["id_val"])
    for _, point in errors.iterrows():
        trials = report["chosen"]["id_val"][point["method"]]["trial_ids"]
        rows = table[table["trial_id"].isin(trials) & (table["epoch"] == point["epoch"])
                     & (table["split"] == "id_test")]
        assert point["id_test_error"] == pytest.approx(100 - rows["accuracy"].mean())


def split_labels(table: pd.DataFrame, split: str) -> pd.Series:
    """One split's labels, read from the data rather than the table: the bins must count every image once."""
    from study.data import create_benchmark

    return create_benchmark("glyphs-small").splits[split].labels



def test_the_table_reads_whole_with_pandas_and_pyarrow(smoke_study):
    """Every part file holds every column: the README's one-liner and pyarrow.dataset see the whole table."""
    import pyarrow.dataset

    from study.results import schema

    results, _ = smoke_study
    folder = results / "smoke" / "results.parquet"
    table = read_table(results / "smoke")
    frame = pd.read_parquet(folder)
    assert list(frame.columns) == schema().names and len(frame) == len(table)
    assert {"lr", "l2", "feature_change", "reliability", "head_norm", "lp_l2"} <= set(frame.columns)
    dataset = pyarrow.dataset.dataset(folder)
    assert dataset.schema.names == schema().names and dataset.count_rows() == len(table)
    assert frame.groupby("method")["lr"].apply(lambda values: values.notna().any()).to_dict() == {
        "lp": False, "ft": True, "lpft": True, "lora": True, "lplora": True}


def test_report_names_damaged_and_missing_parts_and_keeps_the_stored_report(smoke_study, tmp_path, capsys):
    results, _ = smoke_study
    copy = tmp_path / "smoke"
    shutil.copytree(results / "smoke", copy, ignore=shutil.ignore_patterns("ray"))
    parts = sorted((copy / "results.parquet").glob("*.parquet"))
    parts[0].write_bytes(parts[0].read_bytes()[:100])  # a truncated copy
    parts[1].unlink()  # a lost one
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    (parent,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id], "tags.lpft_role = 'study'")
    stored = Path(parent.info.artifact_uri.removeprefix("file://")) / "report" / "summary.json"
    before = stored.read_text()
    assert main(["report", str(copy), "--json"]) == 0
    out, err = capsys.readouterr()
    (warning,) = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert str(parts[0]) in warning and parts[1].stem in warning and "left as it was" in warning
    assert json.loads(out)["trials"]["total"] == len(parts) - 2
    assert stored.read_text() == before, "a smaller report never replaces the stored one silently"


def test_a_study_whose_ray_folder_is_gone_is_not_resumed_and_keeps_its_results(smoke_study, capsys):
    results, _ = smoke_study
    ray_dir, aside = results / "smoke" / "ray", results / "ray-aside"
    ray_dir.rename(aside)
    try:
        code = main(["resume", str(results / "smoke"), "--no-progress"])
    finally:
        aside.rename(ray_dir)
    err = capsys.readouterr().err
    assert code == 2 and "cannot be restored" in err and "study report" in err, err
    assert "remove" not in err and "delete" not in err, "never advise a step that loses finished results"


def test_the_parent_run_carries_each_methods_winner_and_scores(smoke_study):
    """The MLflow runs table answers "which method won" without opening an artifact."""
    results, report = smoke_study
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    (parent,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id], "tags.lpft_role = 'study'")
    tags, metrics = parent.data.tags, parent.data.metrics
    for rule, picks in report["chosen"].items():
        for method, pick in picks.items():
            assert tags[f"selected.{rule}.{method}"] == describe_choice(pick)
            for split in ("id_test", "ood_avg"):
                assert metrics[f"{rule}.{method}.{split}"] == pytest.approx(
                    report["selection"][rule][method][split]["mean"])
    lr, epoch = report["chosen"]["id_val"]["ft"]["config"]["lr"], report["chosen"]["id_val"]["ft"]["epoch"]
    assert f"lr={lr:g}" in tags["selected.id_val.ft"] and tags["selected.id_val.ft"].endswith(f" ({epoch})")
    best = max(report["selection"]["id_val"], key=lambda m: report["selection"]["id_val"][m]["ood_avg"]["mean"])
    assert f"Best on OOD test (average) by ID-val selection: {best}" in tags["mlflow.note.content"]


def test_every_run_lists_the_benchmarks_splits_as_dataset_inputs(smoke_study, cache_dir):
    from study.cache import content_hash
    from study.data import create_benchmark

    results, _ = smoke_study
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke").experiment_id
    glyphs = create_benchmark("glyphs-small", cache_dir=cache_dir)
    expected = {f"glyphs-small/{split}": (content_hash(glyphs.fingerprint, split), len(data))
                for split, data in glyphs.splits.items()}
    runs = client.search_runs([experiment])
    assert len(runs) == 1 + read_table(results / "smoke")["trial_id"].nunique()
    for run in runs:
        inputs = run.inputs.dataset_inputs
        logged = {i.dataset.name: (i.dataset.digest, json.loads(i.dataset.profile)["num_rows"]) for i in inputs}
        assert logged == expected, run.info.run_name
        contexts = {i.dataset.name: {t.key: t.value for t in i.tags}["mlflow.data.context"] for i in inputs}
        assert contexts["glyphs-small/train"] == "training" and contexts["glyphs-small/texture_val"] == "validation"
        assert contexts["glyphs-small/id_test"] == "testing"


def test_config_yaml_and_the_parent_run_hold_the_resolved_config(smoke_study):
    """What ran, every default filled in, not only what was typed; and it reads back into the same study."""
    import yaml

    from study.config import load_config, parse_config

    results, _ = smoke_study
    saved = yaml.safe_load((results / "smoke" / "config.yaml").read_text())
    assert saved["methods"]["ft"]["momentum"] == 0.9 and saved["resources"]["lp_cpus"] == 1.0
    assert saved["tracking_uri"] == f"sqlite:///{results / 'mlflow.db'}" and saved["system_metrics"] is False
    typed = load_config(ROOT / "search_spaces" / "smoke.yaml", [f"methods.ft.lr=[0.03, {DIVERGING_LR}]"],
                        results_dir=str(results))
    assert parse_config(saved).methods == typed.methods and parse_config(saved).seeds == typed.seeds
    client = MlflowClient(saved["tracking_uri"])
    (parent,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id], "tags.lpft_role = 'study'")
    assert parent.data.params["methods.ft.momentum"] == "0.9"
    assert parent.data.params["resources.loader_workers"] == "-1" and parent.data.params["search.scheduler"] == "asha"

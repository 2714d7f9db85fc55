"""At the paper's scale the heavy work must not sit in the driver: a study extracts its features in a Ray task,
LP trials share one warm-started path on their own device, and a file-based benchmark trains with DataLoader
workers exactly as without them. Checked on a real local Ray, a real MLflow store and real files."""
import dataclasses
import json
import os

import pytest
import torch
from mlflow.tracking import MlflowClient

from helpers import ROOT, TOY_LP_GRID
from official_formats import write_imagenet
from study.config import load_config
from study.data import create_benchmark
from study.methods import linear_probe, load_features
from study.methods.run import run_method
from study.results import read_table
from study.tune.runner import run_study


def test_the_driver_builds_no_model_and_extracts_nothing(toy_study):
    study_dir, report, built, ran, _ = toy_study
    assert report["trials"] == {"total": 12, "finished": 8, "diverged": 4, "failed": 0}
    assert built == [] and ran == [], "the driver must not build or run a network"
    extraction = json.loads((study_dir / "manifest.json").read_text())["features"]
    assert extraction["extracted"] and extraction["pid"] != os.getpid() and extraction["device"] == "cpu"


def test_lp_trials_share_one_path_and_match_one_cold_solve_each(toy_study):
    study_dir, _, _, _, cache = toy_study
    heads = list((cache / "features").glob("*-lp-" + "?" * 16 + ".pt"))
    scores = list((cache / "features").glob("*-lp-scores*-*.pt"))
    assert len(heads) == len(scores) == 1, "one warm-started path, scored once, for the whole grid and both seeds"
    table = read_table(study_dir)
    lp = table[(table["method"] == "lp") & (table["split"] != "train")]
    data = create_benchmark("toy-linear")
    features = load_features(json.loads((study_dir / "manifest.json").read_text())["features"]["file"])
    for l2 in TOY_LP_GRID:
        (cold,) = linear_probe(features, l2=l2, num_classes=data.num_classes)  # alone, from zero, uncached
        for seed in (0, 1):
            rows = lp[(lp["l2"] == l2) & (lp["seed"] == seed)].set_index("split")["accuracy"]
            for split, values in cold.splits.items():
                assert rows[split] == pytest.approx(values["acc"], abs=0.1), (l2, seed, split)


def test_every_trial_records_the_device_it_ran_on(toy_study):
    study_dir, *_ = toy_study
    client = MlflowClient(f"sqlite:///{study_dir.parent / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("toy").experiment_id], "tags.trial_id != ''")
    assert len(runs) == 12 and {run.data.tags["device"] for run in runs} == {"cpu"}


@pytest.mark.slow
def test_a_file_based_study_trains_with_loader_workers_as_without(tmp_path, cache_dir):
    """ImageNet's folder layout, 16-px JPEGs, the embedded backbone (read with its own transform): a study whose
    trials decode in two DataLoader worker processes reports, epoch by epoch, what the same trial does in one
    process. Then one training image is damaged: the next study's FT trial fails with that image's one line, and
    the study goes on to report its LP trial."""
    write_imagenet(tmp_path / "data", ["n0001", "n0002", "n0003", "n0004"], r_and_a=["n0002", "n0003"], per_class=8)
    study = load_config(ROOT / "search_spaces" / "smoke.yaml",
                        ["benchmark=imagenet", "methods={ft: {lr: [0.03], epochs: 2, batch_size: 8}}",
                         "resources.loader_workers=2", "wise_alphas=[]", "transforms=backbone"],
                        name="files", results_dir=str(tmp_path / "results"), data_root=str(tmp_path / "data"))
    run_study(study, progress=False)
    table = read_table(study.study_dir)
    manifest = json.loads((study.study_dir / "manifest.json").read_text())
    data = create_benchmark("imagenet", data_root=str(tmp_path / "data"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trial (one CPU): the same float rounding
    try:
        alone = list(run_method("ft", {"lr": 0.03, "epochs": 2, "batch_size": 8}, data=data,
                                features_file=manifest["features"]["file"], backbone="glyphnet", seed=0,
                                transforms="backbone"))
    finally:
        torch.set_num_threads(threads)
    assert [result.epoch for result in alone] == [0, 1, 2]
    for result in alone:
        rows = table[table["epoch"] == result.epoch].set_index("split")
        for split, values in result.splits.items():
            assert rows.loc[split, "accuracy"] == pytest.approx(values["acc"], abs=1e-9), (result.epoch, split)
            assert rows.loc[split, "loss"] == pytest.approx(values["loss"], rel=1e-5), (result.epoch, split)
    assert torch.isfinite(torch.tensor(table["loss"].dropna().tolist())).all()

    image = data.splits["train"].paths[3]
    with open(image, "r+b") as file:
        file.truncate(100)
    damaged = dataclasses.replace(study, name="files-damaged", max_failures=0, methods={
        **load_config(ROOT / "search_spaces" / "smoke.yaml", ["methods={lp: {l2: [0.001]}}"]).methods,
        "ft": study.methods["ft"]})
    report, _ = run_study(damaged, progress=False)
    assert report["trials"] == {"total": 2, "finished": 1, "diverged": 0, "failed": 1}
    errors = [path.read_text() for path in (damaged.study_dir / "ray").rglob("error.txt")]
    assert len(errors) == 1 and f"DataError: {image}: not a readable image" in errors[0]

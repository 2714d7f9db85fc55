"""The theory's toy, through the same methods and registries as every study: the claims of Kumar et al.'s theorem,
checked numerically, on the classification version and on the theorem's own (regression, squared loss)."""

import pytest
import torch

from helpers import ROOT, run_trial
from study.config import load_config
from study.data.toy import ToyWorld
from study.methods import EpochResult
from study.models import create_backbone
from study.tune.runner import run_study

TOY = dict(benchmark="toy-linear", backbone="toy-linear", seed=0, head=("l2", (1e-4,)))
REGRESSION = dict(benchmark="toy-linear-regression", backbone="toy-linear-regression", seed=0,
                  head=("l2", (1e-8, 1e-6)))


def final(method: str, lr: float, cache_dir, toy: dict = TOY, epochs: int = 20) -> EpochResult:
    *_, last = run_trial(method, {"lr": lr, "epochs": epochs}, cache_dir=cache_dir, **toy)
    return last


def encoder_change(result: EpochResult, toy: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """B - B0 after ``result``, and its part along the ID subspace S."""
    world = ToyWorld(task="regression" if toy is REGRESSION else "classification")
    _, _, subspace = world.truth()
    start = create_backbone(toy["backbone"], num_classes=world.outputs).model.encoder.weight.detach()
    change = result.state["model"]["encoder.weight"] - start
    return change, change @ subspace @ subspace.T


@pytest.mark.parametrize("method", ["ft", "lpft"])
def test_fine_tuning_changes_the_features_only_along_the_id_subspace(method, cache_dir):
    change, along = encoder_change(final(method, 0.03, cache_dir), TOY)
    assert along.abs().max() > 1e-2, "B must move along S"
    assert (change - along).abs().max() < 1e-5, "and not at all outside it"


@pytest.mark.parametrize("lr", [0.003, 0.01, 0.03])
def test_fine_tuning_loses_more_ood_accuracy_than_lp_ft(lr, cache_dir):
    """In the theorem's regime, small steps (it studies gradient flow). With large steps and momentum the discrete
    dynamics leave it: at lr 0.1, LP-FT's large LP head pushes B hard and LP-FT falls behind FT OOD (46 vs 58 %)."""
    ft, lpft = final("ft", lr, cache_dir), final("lpft", lr, cache_dir)
    assert ft.splits["offsubspace_test"]["acc"] < lpft.splits["offsubspace_test"]["acc"]
    (lp,) = run_trial("lp", {"l2": 1e-4}, cache_dir=cache_dir, **TOY)
    assert lpft.splits["offsubspace_test"]["acc"] <= lp.splits["offsubspace_test"]["acc"] + 1.0


# The theorem's own setting: the squared loss, one output, and a B0 exact on S, so that LP fits ID exactly.

def test_regression_lp_fits_id_exactly_with_b0(cache_dir):
    (lp,) = run_trial("lp", {"l2": 1e-8}, cache_dir=cache_dir, **REGRESSION)
    assert lp.splits["id_test"]["mse"] < 1e-8 and lp.train_loss < 1e-8
    assert lp.splits["offsubspace_test"]["mse"] > 1e-3, "B0's error outside S costs LP some OOD error"


def test_regression_fine_tuning_moves_b_along_s_and_not_outside(cache_dir):
    change, along = encoder_change(final("ft", 0.03, cache_dir, REGRESSION), REGRESSION)
    assert along.norm() > 0.1
    assert (change - along).abs().max() < 1e-5, "gradients V^T g x^T with x in S never leave S"


def test_regression_lp_ft_from_an_exact_lp_head_keeps_b_and_lps_ood_error(cache_dir):
    (lp,) = run_trial("lp", {"l2": 1e-8}, cache_dir=cache_dir, **REGRESSION)
    for lr in (0.003, 0.03):
        lpft = final("lpft", lr, cache_dir, REGRESSION)
        change, _ = encoder_change(lpft, REGRESSION)
        start = create_backbone("toy-linear-regression", num_classes=1).model.encoder.weight
        assert change.norm() < 1e-4 * start.norm(), "zero ID loss, zero gradient: B stays at B0 (float32 rounding)"
        assert lpft.splits["offsubspace_test"]["mse"] == pytest.approx(lp.splits["offsubspace_test"]["mse"], rel=1e-3)


@pytest.mark.parametrize("lr", [0.003, 0.03])
def test_regression_fine_tuning_ood_error_is_several_fold_lp_fts(lr, cache_dir):
    ft, lpft = final("ft", lr, cache_dir, REGRESSION), final("lpft", lr, cache_dir, REGRESSION)
    assert ft.splits["id_test"]["mse"] < 1e-3, "FT fits ID too"
    assert ft.splits["offsubspace_test"]["mse"] > 5 * lpft.splits["offsubspace_test"]["mse"]


def test_the_regression_toy_runs_through_the_study_path(tmp_path):
    """``search_spaces/toy-regression.yaml``, trimmed, through a real local Ray and MLflow store: selected by the
    lowest ID-val squared error, LP-FT reported at LP's OOD error and FT's several-fold."""
    study = load_config(ROOT / "search_spaces" / "toy-regression.yaml",
                        ["seeds=[0,1]", "methods.lp.l2=[1e-8, 1e-4]", "methods.ft.lr=[0.03]", "methods.ft.epochs=8",
                         "methods.lpft.lr=[0.03]", "methods.lpft.epochs=8"],
                        results_dir=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"))
    report, text = run_study(study, progress=False)
    assert report["metric"] == "mse" and report["trials"]["finished"] == report["trials"]["total"] == 8
    picked, ood = report["selection"]["id_val"], lambda method: picked[method]["ood_avg"]["mean"]
    assert report["chosen"]["id_val"]["lp"]["config"] == {"l2": 1e-8}, "the lowest ID-val error wins"
    assert ood("lpft") == pytest.approx(ood("lp"), rel=1e-3) and ood("ft") > 5 * ood("lpft")
    assert "Mean squared error, mean ± sample std" in text
    assert {path.name for path in (study.study_dir / "report").glob("*.png")} == {
        "error_per_epoch.png", "feature_change.png", "sensitivity.png"}


def test_a_method_whose_every_trial_diverged_is_reported_as_such(toy_study, tmp_path):
    """The toy study's FT grid diverges on both seeds: LP is still selected and reported, FT's row says why it has
    none, the parent run ends FINISHED (and `study run` exited 0); and a table of FT's trials alone (as an FT-only
    study's) reports that row alone."""
    from mlflow.tracking import MlflowClient

    from study.analysis.report import write_report
    from study.results import read_table

    study_dir, report, *_ = toy_study
    assert set(report["selection"]["id_val"]) == {"lp"} and report["unselected"] == {"ft": "all 4 trials diverged"}
    client = MlflowClient(f"sqlite:///{study_dir.parent / 'mlflow.db'}")
    (parent,) = client.search_runs([client.get_experiment_by_name("toy").experiment_id], "tags.lpft_role = 'study'")
    assert parent.info.status == "FINISHED"
    table = read_table(study_dir)
    _, only, _ = write_report(tmp_path / "ftonly", table[table["method"] == "ft"])
    assert "| FT | — |" in only and "none: all 4 trials diverged" in only and "| LP |" not in only

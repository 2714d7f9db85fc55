"""The theory's toy, through the same methods and registries as every study: the claims of Kumar et al.'s theorem,
checked numerically."""
import pytest

from conftest import run_trial
from study.data.toy import ToyWorld
from study.methods import EpochResult
from study.models import create_backbone

TOY = dict(benchmark="toy-linear", backbone="toy-linear", seed=0, head=("l2", (1e-4,)))


def final(method: str, lr: float, cache_dir) -> EpochResult:
    *_, last = run_trial(method, {"lr": lr, "epochs": 20}, cache_dir=cache_dir, **TOY)
    return last


@pytest.mark.parametrize("method", ["ft", "lpft"])
def test_fine_tuning_changes_the_features_only_along_the_id_subspace(method, cache_dir):
    _, _, subspace = ToyWorld().truth()
    start = create_backbone("toy-linear", num_classes=4).model.encoder.weight.detach()
    change = final(method, 0.03, cache_dir).state["model"]["encoder.weight"] - start
    along = change @ subspace @ subspace.T
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

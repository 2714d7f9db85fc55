"""Linear probing: the torch L-BFGS solver is the paper's sklearn logistic regression."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from study.methods import cached_features, linear_probe, lp_sweep
from study.methods.lp import best_head, scalar_standardizer


@pytest.fixture(scope="module")
def features(cache_dir, glyphs):
    from tests.conftest import make_backbone

    return cached_features(make_backbone(cache_dir, glyphs.num_classes), glyphs, cache_dir=cache_dir)


@pytest.mark.parametrize("l2", [1e-4, 1e-3, 1e-2])
def test_lp_matches_sklearn(features, glyphs, l2):
    train_x, train_y = features["train"]
    val_x, val_y = features["id_val"]
    mean, std = scalar_standardizer(train_x)
    sklearn = LogisticRegression(C=1.0 / (l2 * len(train_y)), max_iter=5000, tol=1e-8)
    sklearn.fit(((train_x - mean) / std).numpy(), train_y.numpy())
    sklearn_acc = 100 * sklearn.score(((val_x - mean) / std).numpy(), val_y.numpy())

    ours = next(linear_probe(features, l2=l2, num_classes=glyphs.num_classes))
    assert abs(ours.splits["id_val"]["acc"] - sklearn_acc) <= 0.5
    head = ours.state["head"]
    ours_probs = torch.softmax(val_x @ head["weight"].T + head["bias"], 1).numpy()
    sklearn_probs = sklearn.predict_proba(((val_x - mean) / std).numpy())
    assert np.abs(ours_probs - sklearn_probs).max() < 0.02


def test_lp_reports_every_split_once(features, glyphs):
    results = list(linear_probe(features, l2=1e-3, num_classes=glyphs.num_classes))
    assert [r.epoch for r in results] == [1]
    assert set(results[0].splits) == set(glyphs.eval_splits)
    assert all(0 <= v["acc"] <= 100 for v in results[0].splits.values())


def test_sweep_runs_strong_to_weak_and_picks_first_maximum(features, glyphs):
    sweep = lp_sweep(features, [1e-2, 1e-5, 1e-3], glyphs.num_classes)
    assert [l2 for l2, _ in sweep] == [1e-2, 1e-3, 1e-5]
    norms = [head.norm for _, head in sweep]
    assert norms == sorted(norms), "weaker L2 must give a larger head"
    l2, head = best_head(features, sweep)
    val_x, val_y = features["id_val"]
    accuracies = [(h.logits(val_x).argmax(1) == val_y).float().mean().item() for _, h in sweep]
    assert l2 == sweep[accuracies.index(max(accuracies))][0]

"""The per-split metrics on a hand-worked example."""
import math

import pytest
import torch

from study.methods.metrics import SplitMeter, score

# Two classes; confidences 0.9, 0.9, 0.6, 0.6; the second prediction is wrong.
PROBABILITIES = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
LABELS = torch.tensor([0, 1, 0, 0])


def test_accuracy_ece_brier_and_nll_by_hand():
    metrics = score(PROBABILITIES.log(), LABELS)
    assert metrics["acc"] == pytest.approx(75.0)
    # bin of 0.9: accuracy 0.5 vs confidence 0.9; bin of 0.6: accuracy 1.0 vs 0.6; each holds half the examples
    assert metrics["ece"] == pytest.approx(100 * (0.5 * 0.4 + 0.5 * 0.4))
    assert metrics["brier"] == pytest.approx((0.02 + 1.62 + 0.32 + 0.32) / 4)
    assert metrics["loss"] == pytest.approx(-(math.log(0.9) + math.log(0.1) + 2 * math.log(0.6)) / 4)
    assert "feature_change" not in metrics
    # the reliability bins (15 equal-width): 0.6 falls in bin 9, 0.9 in bin 13; counts, confidence sums, correct counts
    count, confidence, correct = (metrics["reliability"][i * 15:(i + 1) * 15] for i in range(3))
    assert [count[9], count[13], sum(count)] == [2, 2, 4]
    assert [confidence[9], confidence[13]] == pytest.approx([1.2, 1.8])
    assert [correct[9], correct[13]] == [2, 1]


def test_feature_change_and_batches_add_up():
    reference = torch.randn(4, 8)
    meter = SplitMeter()
    meter.update(PROBABILITIES[:2].log(), LABELS[:2], 2 * reference[:2], reference[:2])
    meter.update(PROBABILITIES[2:].log(), LABELS[2:], 2 * reference[2:], reference[2:])
    metrics = meter.result()
    assert metrics["feature_change"] == pytest.approx(1.0)  # ||2f - f||^2 / ||f||^2
    assert metrics["feature_cosine"] == pytest.approx(0.0, abs=1e-12)  # same directions
    whole = score(PROBABILITIES.log(), LABELS)
    assert metrics.pop("reliability") == pytest.approx(whole.pop("reliability"))
    assert {k: metrics[k] for k in whole} == pytest.approx(whole)

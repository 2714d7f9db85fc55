"""Fine-tuning and LP-FT as plain PyTorch loops."""
import math

import pytest
import torch
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.optim.optimizer import register_optimizer_step_pre_hook

from helpers import features_of, make_backbone, pipeline, sgd
from study.methods import Diverged, Scoring, best_fit, fine_tune, fit_path, lp_ft
from study.methods.evaluation import evaluate
from study.methods.metrics import score


def test_ft_lowers_training_loss(backbone, small_glyphs):
    results = list(fine_tune(backbone.model, pipeline(small_glyphs, backbone),
                             **sgd(lr=0.03, epochs=3, batch_size=32), seed=0))
    assert [r.epoch for r in results] == [0, 1, 2, 3]
    losses = [r.train_loss for r in results[1:]]
    assert losses[-1] < losses[0]
    assert set(results[-1].splits) == set(small_glyphs.eval_splits)


def test_ft_is_deterministic_and_resumes_where_it_stopped(cache_dir, small_glyphs):
    def run(resume=None, stop_after=None):
        backbone = make_backbone(cache_dir, small_glyphs.num_classes)
        out = []
        for result in fine_tune(backbone.model, pipeline(small_glyphs, backbone),
                                **sgd(lr=0.03, epochs=3, batch_size=32), seed=1, resume=resume):
            out.append(result)
            if result.epoch == stop_after:
                return out, {k: v for k, v in result.state.items()}
        return out, None

    full, _ = run()
    _, state = run(stop_after=1)
    state = {k: (v if not isinstance(v, dict) else _clone(v)) for k, v in state.items()}
    resumed, _ = run(resume=state)
    assert [r.epoch for r in resumed] == [2, 3]
    for a, b in zip(full[2:], resumed):
        assert a.splits["id_val"]["acc"] == pytest.approx(b.splits["id_val"]["acc"], abs=1e-6)
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)


def _clone(tree):
    if isinstance(tree, dict):
        return {k: _clone(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_clone(v) for v in tree]
    return tree.clone() if isinstance(tree, torch.Tensor) else tree


def test_ft_raises_diverged_on_nan_loss(backbone, small_glyphs):
    with pytest.raises(Diverged) as error:
        list(fine_tune(backbone.model, pipeline(small_glyphs, backbone), **sgd(lr=1e6, epochs=2, batch_size=32)))
    assert error.value.epoch == 1
    assert not math.isfinite(error.value.loss)


def test_lpft_starts_at_the_lp_heads_accuracy(cache_dir, backbone, glyphs):
    file, features = features_of(glyphs, "glyphnet", cache_dir)
    l2_values = [1e-4, 1e-3, 1e-2]
    best = best_fit(features, fit_path(features, l2_values, glyphs.num_classes))
    start = next(lp_ft(backbone.model, pipeline(glyphs, backbone), features, head_l2=l2_values, features_file=file,
                       **sgd(lr=1e-3, epochs=1)))
    assert start.epoch == 0
    assert start.extras["lp_l2"] == best.l2
    for split in glyphs.eval_splits:
        x, y = features[split]
        # The same head on the same features, computed once as a matmul and once through the network's layer:
        # float rounding may flip an image lying on a decision boundary, and no more than one.
        one_image = 100 / len(y)
        assert start.splits[split]["acc"] == pytest.approx(score(best.head.logits(x), y)["acc"], abs=one_image), split


def test_the_start_is_scored_from_the_cached_features_as_a_pass_over_the_images_scores_it(cache_dir, small_glyphs):
    """At epoch 0 the encoder is the pretrained one whose features the study cached: FT scores its start from them
    (only the head runs) and gets what a pass of the encoder over every split gets."""
    _, features = features_of(small_glyphs, "glyphnet", cache_dir)
    backbone = make_backbone(cache_dir, small_glyphs.num_classes)
    data = pipeline(small_glyphs, backbone)
    ran = []
    hook = register_module_forward_pre_hook(lambda module, *_: ran.append(module))
    try:
        start = next(fine_tune(backbone.model, data, **sgd(lr=0.03, epochs=1, batch_size=32),
                               scoring=Scoring(reference=features)))
    finally:
        hook.remove()
    assert start.epoch == 0 and set(ran) == {backbone.model.get_classifier()}, "no pass over the images"
    passed = evaluate(backbone.model, data, reference=features)
    for split, metrics in passed.items():
        assert start.splits[split]["acc"] == pytest.approx(metrics["acc"], abs=100 / len(features[split][1])), split
        assert start.splits[split]["loss"] == pytest.approx(metrics["loss"], rel=1e-4), split
        assert start.splits[split]["feature_change"] == 0 and metrics["feature_change"] < 1e-9, split


def test_lpft_keeps_batch_norm_statistics(cache_dir, backbone, small_glyphs):
    _, features = features_of(small_glyphs, "glyphnet", cache_dir)
    bn, conv = backbone.model.bn1, backbone.model.conv1
    running_mean, weights = bn.running_mean.clone(), conv.weight.detach().clone()
    results = list(lp_ft(backbone.model, pipeline(small_glyphs, backbone), features, head_l2=[1e-3],
                         **sgd(lr=1e-2, epochs=1, batch_size=32)))
    assert results[-1].epoch == 1
    assert torch.equal(bn.running_mean, running_mean), "batch-norm statistics must stay the pretrained ones"
    assert not torch.equal(conv.weight, weights), "the encoder itself must still be fine-tuned"


def test_ft_trains_under_bf16_autocast_and_scores_in_float32(backbone, small_glyphs):
    results = list(fine_tune(backbone.model, pipeline(small_glyphs, backbone),
                             **sgd(lr=0.03, epochs=2, batch_size=32), precision="bf16"))
    assert math.isfinite(results[-1].train_loss) and results[-1].train_loss < results[1].train_loss
    assert all(p.dtype == torch.float32 for p in backbone.model.parameters()), "autocast leaves the weights in fp32"


@pytest.mark.parametrize("schedule", ["epoch", "step"])
def test_cosine_schedule_steps_once_per_epoch_as_the_official_code_or_per_batch(backbone, small_glyphs, schedule):
    used = []  # the learning rate of every optimizer step, as the optimizer saw it
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, *_: used.append(optimizer.param_groups[0]["lr"]))
    try:
        list(fine_tune(backbone.model, pipeline(small_glyphs, backbone),
                       **sgd(lr=0.1, epochs=3, batch_size=64), seed=0, schedule=schedule))
    finally:
        hook.remove()
    steps = len(small_glyphs.splits["train"]) // 64
    epochs = [used[k * steps:(k + 1) * steps] for k in range(3)]
    if schedule == "epoch":  # CosineAnnealingLR(T_max=epochs): epoch e trains at lr (1 + cos(pi (e - 1) / 3)) / 2
        for k, rates in enumerate(epochs):
            assert rates == [pytest.approx(0.05 * (1 + math.cos(math.pi * k / 3)))] * steps
    else:
        assert used[0] == pytest.approx(0.1) and all(a > b for a, b in zip(used, used[1:]))
        assert used[steps] == pytest.approx(0.05 * (1 + math.cos(math.pi / 3)))

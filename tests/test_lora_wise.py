"""LoRA (an FT variant that trains low-rank adapters and the head) and WiSE-FT (weight interpolation), as plain
PyTorch on the embedded backbone."""
import pytest
import torch

from helpers import features_of, make_backbone, pipeline, sgd
from study.methods import Scoring, add_lora, fine_tune, lora_ft, lp_ft, wise_curve
from study.methods.wise import interpolate, snapshot


def test_lora_starts_at_the_pretrained_model_and_trains_only_adapters_and_head(backbone, small_glyphs):
    model = backbone.model.eval()
    images = backbone.normalize(torch.stack([small_glyphs.splits["id_val"][i][0] for i in range(8)]))
    before = model(images)
    wrapped = add_lora(model, rank=4, scale=1.0)
    assert "conv1" in wrapped and "layer1.0.conv1" in wrapped and "fc" not in wrapped
    assert torch.equal(model(images), before), "B starts at zero: the adapted model is the pretrained one"
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".down." in n or ".up." in n or n.startswith("fc.") for n in trainable)
    assert {"fc.weight", "fc.bias"} <= trainable


def test_lora_changes_the_encoder_only_through_its_adapters(backbone, small_glyphs, cache_dir):
    _, features = features_of(small_glyphs, "glyphnet", cache_dir)
    model = backbone.model
    frozen = {name: value.clone() for name, value in model.state_dict().items() if not name.startswith("fc.")}
    results = list(lora_ft(model, pipeline(small_glyphs, backbone), rank=2, scale=2.0,
                           **sgd(lr=0.05, epochs=2, batch_size=32), scoring=Scoring(reference=features)))
    state = results[-1].state["model"]
    for name, value in frozen.items():  # every pretrained weight and batch-norm statistic, now under `.base`
        key = name if name in state else name.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
        assert torch.equal(state[key], value), name
    assert any(state[k].abs().sum() > 0 for k in state if k.endswith(".up.weight")), "adapters must train"
    assert results[-1].splits["id_test"]["feature_change"] > 0
    assert results[-1].train_loss < results[1].train_loss


def test_lp_lora_starts_from_the_lp_head(backbone, small_glyphs, cache_dir):
    _, features = features_of(small_glyphs, "glyphnet", cache_dir)
    data = pipeline(small_glyphs, backbone)
    plain = next(lp_ft(backbone.model, data, features, head_l2=[1e-3], **sgd(lr=1e-2, epochs=1, batch_size=32)))
    other = make_backbone(cache_dir, small_glyphs.num_classes).model
    adapted = next(lp_ft(other, data, features, head_l2=[1e-3], rank=4,
                         **sgd(lr=1e-2, epochs=1, batch_size=32)))
    assert adapted.splits == plain.splits, "LoRA adds nothing at its start: LP-LoRA's epoch 0 is LP-FT's"
    assert any(".up." in name for name in other.state_dict())


def test_interpolation_hits_both_ends_exactly():
    start = {"w": torch.randn(3, 3), "n": torch.tensor(0)}
    end = {"w": torch.randn(3, 3), "n": torch.tensor(7)}
    assert torch.equal(interpolate(start, end, 0.0)["w"], start["w"])
    assert torch.equal(interpolate(start, end, 1.0)["w"], end["w"])
    assert torch.allclose(interpolate(start, end, 0.5)["w"], (start["w"] + end["w"]) / 2)
    assert interpolate(start, end, 0.5)["n"] == 7


def test_wise_curve_ends_at_the_start_and_final_models_and_keeps_the_weights(backbone, small_glyphs):
    start, data = snapshot(backbone.model), pipeline(small_glyphs, backbone)
    results = list(fine_tune(backbone.model, data, **sgd(lr=0.03, epochs=2, batch_size=32), seed=0,
                             scoring=Scoring(wise_alphas=(0.0, 0.5, 1.0))))
    assert list(results[-1].wise) == [0.0, 0.5, 1.0]
    assert results[0].wise is None and results[1].wise is None, "only the last epoch scores WiSE-FT"
    assert "wise/0.5/id_test/acc" in results[-1].flat()
    final = snapshot(backbone.model)
    ends = wise_curve(backbone.model, start, data, Scoring(wise_alphas=(0.0, 1.0)))  # evaluated afresh, nothing reused
    for split in small_glyphs.eval_splits:
        assert ends[0.0][split]["acc"] == results[0].splits[split]["acc"]
        assert ends[1.0][split]["acc"] == results[-1].splits[split]["acc"]
    assert all(torch.equal(final[name], value) for name, value in backbone.model.state_dict().items())
    middle = results[-1].wise[0.5]["id_val"]["loss"]
    assert middle not in (ends[0.0]["id_val"]["loss"], ends[1.0]["id_val"]["loss"]), "alpha 0.5 is a third model"


@pytest.mark.parametrize("key,value,message", [
    ("wise_alphas", [0.0, 1.5], "wise_alphas: expected numbers from 0"),
    ("methods", {"lora": {"rank": 0}}, "methods.lora.rank: must be positive"),
    ("methods", {"lplora": {"lr": [0.01]}}, "lpft_head_l2: LP-FT needs the L2 values"),
])
def test_lora_and_wise_settings_are_validated(key, value, message):
    from study.config import ConfigError, parse_config

    raw = {"name": "x", "methods": {"ft": {"lr": [0.01]}}, key: value}
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert any(line.startswith(message) for line in error.value.problems), error.value.problems

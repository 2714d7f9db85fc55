"""The robust fine-tuning methods, each by its defining property: L2-SP without its terms is FT, freeze-embed and
surgical FT leave what they freeze bit-identical, BitFit moves only biases and the head, SPD without decay is AdamW,
DoRA starts at the pretrained model. Ray-free trials on the embedded benchmark's first images."""
import pytest
import torch

from helpers import features_of, make_backbone, pipeline, sgd
from study.methods import fine_tune
from study.methods.catalog import METHODS
from study.methods.lora import LoRA, add_lora
from study.methods.parts import block_groups, head_names
from study.methods.run import run_method
from study.methods.spd import SelectiveProjectionDecay

EPOCHS = {"epochs": 2, "batch_size": 32}


def trained(method: str, hparams: dict, data, cache_dir, **options):
    """(the per-epoch results, the pretrained weights, the final weights) of one trial."""
    file, _ = features_of(data, "glyphnet", cache_dir)
    start = {k: v.clone() for k, v in make_backbone(cache_dir, data.num_classes).model.state_dict().items()}
    results = list(run_method(method, {**EPOCHS, **hparams}, data=data, features_file=file, backbone="glyphnet",
                              seed=0, cache_dir=cache_dir, **options))
    return results, start, results[-1].state["model"]


def changed(start: dict, end: dict) -> set[str]:
    return {name for name, value in end.items() if value.is_floating_point() and not torch.equal(value, start[name])}


def test_l2sp_without_its_terms_is_ft_step_for_step(small_glyphs, cache_dir):
    ft, _, ft_end = trained("ft", {"lr": 0.03}, small_glyphs, cache_dir)
    sp, _, sp_end = trained("l2sp", {"lr": 0.03, "sp_alpha": 0.0, "sp_beta": 0.0}, small_glyphs, cache_dir)
    assert [r.splits for r in sp] == [r.splits for r in ft] and [r.train_loss for r in sp] == [r.train_loss for r in ft]
    assert all(torch.equal(sp_end[name], value) for name, value in ft_end.items())
    pulled, _, pulled_end = trained("l2sp", {"lr": 0.03, "sp_alpha": 1.0, "sp_beta": 0.0}, small_glyphs, cache_dir)
    start = make_backbone(cache_dir, small_glyphs.num_classes).model.state_dict()
    distance = {name: sum((end[k] - start[k]).pow(2).sum() for k in end if k.startswith("layer") and "weight" in k)
                for name, end in (("ft", ft_end), ("l2sp", pulled_end))}
    assert distance["l2sp"] < distance["ft"], "alpha pulls the encoder toward its pretrained weights"


@pytest.mark.parametrize("method, hparams, frozen_prefixes", [
    ("freeze_embed", {}, ("conv1.",)),
    ("surgical", {"blocks": "last"}, ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.")),
    ("surgical", {"blocks": "first"}, ("layer3.", "layer4.")),  # 4 blocks in thirds: layer1-2, layer3, layer4
])
def test_frozen_tensors_stay_bit_identical_and_the_others_train(method, hparams, frozen_prefixes, small_glyphs,
                                                                 cache_dir):
    _, start, end = trained(method, {"lr": 0.03, **hparams}, small_glyphs, cache_dir)
    moved = changed(start, end)
    parameters = {name for name, _ in make_backbone(cache_dir, small_glyphs.num_classes).model.named_parameters()}
    frozen = {name for name in parameters if name.startswith(frozen_prefixes)}
    assert frozen and not moved & frozen, sorted(moved & frozen)[:3]
    assert parameters - frozen <= moved, f"every other parameter trains: {sorted(parameters - frozen - moved)[:3]}"


def test_surgical_groups_split_the_blocks_in_thirds(cache_dir):
    model = make_backbone(cache_dir, 4).model
    stem, blocks = block_groups(model)
    assert stem == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert [{name.split(".")[0] for name in block} for block in blocks] == [{"layer1"}, {"layer2"}, {"layer3"},
                                                                            {"layer4"}]


def test_bitfit_moves_only_biases_and_the_head(small_glyphs, cache_dir):
    _, start, end = trained("bitfit", {"lr": 0.03}, small_glyphs, cache_dir)
    moved = changed(start, end) - {name for name in end if "running_" in name}  # batch-norm statistics follow data
    model = make_backbone(cache_dir, small_glyphs.num_classes).model
    assert moved and all(name.endswith("bias") or name in head_names(model) for name in moved), sorted(moved)
    assert {"fc.weight", "fc.bias", "bn1.bias", "layer4.0.bn2.bias"} <= moved


def test_spd_without_decay_is_adamw_step_for_step():
    torch.manual_seed(0)
    ours, theirs = (torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
                    for _ in range(2))
    theirs.load_state_dict(ours.state_dict())
    inputs, labels = torch.randn(64, 6), torch.randint(0, 3, (64,))
    optimizers = (SelectiveProjectionDecay(ours.parameters(), lr=1e-2, strength=0.0),
                  torch.optim.AdamW(theirs.parameters(), lr=1e-2, weight_decay=0.0))
    for step in range(30):
        for model, optimizer in zip((ours, theirs), optimizers):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs[step % 4::4]), labels[step % 4::4]).backward()
            optimizer.step()
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(mine, reference, rtol=0, atol=1e-7)


def test_spd_projects_an_inconsistent_step_back_toward_the_start():
    """One tensor, one step worked by hand: the gradient points away from w0 after the weights moved toward ... """
    weight = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    optimizer = SelectiveProjectionDecay([weight], lr=0.1, strength=0.5)
    with torch.no_grad():
        weight.copy_(torch.tensor([2.0, 0.0]))  # moved from w0 = (1, 0)
    weight.grad = torch.tensor([-1.0, 0.0])  # c = -<g, w - w0> = 1 > 0: consistent, no projection
    optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.tensor([2.1, 0.0]))  # Adam's first step: lr * sign(g)
    weight.grad = torch.tensor([1.0, 0.0])  # c = -<g, w - w0> = -1.1 < 0: the step is projected
    before = weight.detach().clone()
    optimizer.step()
    state = optimizer.state[weight]
    adam = before - 0.1 / (1 - 0.9 ** 2) * state["exp_avg"] / (state["exp_avg_sq"].sqrt() / (1 - 0.999 ** 2) ** 0.5
                                                                + 1e-8)
    ratio = ((adam - 1).norm() - (before - 1).norm()).div((adam - 1).norm()).clamp(0, 1)
    expected = adam - 0.5 * ratio * (adam - torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(weight.detach(), expected)


def test_dora_starts_at_the_pretrained_model_and_trains_its_magnitudes(small_glyphs, cache_dir):
    backbone = make_backbone(cache_dir, small_glyphs.num_classes)
    model = backbone.model.eval()
    images = small_glyphs.splits["id_val"].images[:8]
    with torch.no_grad():
        before = model(backbone.normalize(images))
    names = add_lora(model, rank=2, scale=1.0, dora=True)
    with torch.no_grad():
        torch.testing.assert_close(model(backbone.normalize(images)), before, rtol=1e-5, atol=1e-5)
    adapters = [module for module in model.modules() if isinstance(module, LoRA)]
    assert len(adapters) == len(names) and all(adapter.magnitude.requires_grad for adapter in adapters)
    results = list(fine_tune(model, pipeline(small_glyphs, backbone), freeze_bn=True, seed=0,
                             **sgd(lr=0.03, **EPOCHS)))
    assert results[-1].splits["id_val"]["acc"] != results[0].splits["id_val"]["acc"]
    assert not torch.equal(adapters[0].magnitude, adapters[0].base.weight.flatten(1).norm(dim=1))


def test_every_new_method_runs_a_trial_and_lp_variants_start_from_the_lp_head(small_glyphs, cache_dir):
    lp_start = trained("lpft", {"lr": 0.001, "epochs": 1}, small_glyphs, cache_dir, head=("l2", [1e-3]))[0][0]
    for method in ("lpl2sp", "lpspd", "lpdora"):
        results, _, _ = trained(method, {"epochs": 1}, small_glyphs, cache_dir, head=("l2", [1e-3]))
        assert results[0].splits == lp_start.splits, f"{method} starts where LP-FT does"
        assert results[-1].extras["lp_l2"] == pytest.approx(1e-3)
    for method in ("spd", "dora"):
        results, _, _ = trained(method, {"epochs": 1}, small_glyphs, cache_dir)
        assert [r.epoch for r in results] == [0, 1] and METHODS[method].trains_encoder


def test_a_greedy_soup_of_one_trial_is_that_trial_and_a_uniform_soup_of_two_copies_is_the_model(cache_dir):
    from study.methods.soups import greedy_soup, uniform_soup

    state = make_backbone(cache_dir, 4).model.state_dict()
    kept, soup, accuracy = greedy_soup([("t1", 80.0)], lambda name: state, val_accuracy=lambda s: 0.0)
    assert kept == ["t1"] and accuracy == 80.0
    assert all(torch.equal(soup[name], value) for name, value in state.items())
    twice = uniform_soup(["a", "b"], lambda name: state)
    assert all(torch.equal(twice[name], value) for name, value in state.items())


def test_a_greedy_soup_keeps_a_member_only_if_id_val_does_not_fall():
    from study.methods.soups import greedy_soup, uniform_soup

    states = {name: {"w": torch.tensor([value])} for name, value in (("a", 1.0), ("b", 3.0), ("c", 100.0))}
    accuracy = {1.0: 70.0, 2.0: 75.0, round(104 / 3, 4): 10.0}  # the soup of a and b is better; c ruins it

    kept, soup, best = greedy_soup([("c", 60.0), ("a", 70.0), ("b", 65.0)], states.__getitem__,
                                   lambda state: accuracy.get(round(state["w"].item(), 4), 0.0))
    assert kept == ["a", "b"] and soup["w"].item() == 2.0 and best == 75.0, "sorted by ID val: a, b, then c"
    assert uniform_soup(["a", "b", "c"], states.__getitem__)["w"].item() == pytest.approx(104 / 3)


def _tiny(benchmark, train: int = 64, other: int = 32):
    """The first examples of every split of ``benchmark``, as a benchmark of its own."""
    from study.data import Benchmark, Sentences, TensorImages

    def head(split, count):
        if isinstance(split, Sentences):
            return Sentences(split.texts[:count], split.labels[:count])
        return TensorImages(split.images[:count], split.labels[:count])

    splits = {name: head(split, train if name == "train" else other) for name, split in benchmark.splits.items()}
    return Benchmark(name=benchmark.name, classes=benchmark.classes, ood_domains=benchmark.ood_domains, splits=splits,
                     fingerprint=benchmark.fingerprint + "-tiny", protocol=benchmark.protocol)


@pytest.fixture(scope="module")
def tiny_worlds(cache_dir, bert_folder):
    """(benchmark, backbone) of the three kinds a method must run on: the glyphs with glyphnet, the digits with the
    ImageNet EfficientNet-Lite0, sentences with a transformers folder."""
    from study.data import Benchmark, Sentences, create_benchmark

    reviews = {"train": 32, "id_val": 16, "id_test": 16, "food_val": 16, "food_test": 16}
    words = ["good", "great", "bad", "awful"]
    sentences = Benchmark(name="reviews", classes=("negative", "positive"), ood_domains=("food",), fingerprint="rv",
                          splits={name: Sentences([f"the film was {words[i % 4]}" for i in range(count)],
                                                  torch.tensor([int(i % 4 < 2) for i in range(count)]))
                                  for name, count in reviews.items()})
    return {"glyphs": (_tiny(create_benchmark("glyphs-small", cache_dir=cache_dir)), "glyphnet"),
            "digits": (_tiny(create_benchmark("digits", cache_dir=cache_dir)), "efficientnet-lite0"),
            "text": (sentences, f"transformers:{bert_folder}")}


@pytest.mark.parametrize("method", [name for name, method in METHODS.items() if method.trains_encoder])
def test_every_method_runs_on_glyphs_digits_and_text(method, tiny_worlds, cache_dir):
    for world, (data, backbone) in tiny_worlds.items():
        file, _ = features_of(data, backbone, cache_dir)
        hparams = {"epochs": 1, "batch_size": 16, **({"blocks": "middle"} if method == "surgical" else {})}
        results = list(run_method(method, hparams, data=data, features_file=file, backbone=backbone, seed=0,
                                  cache_dir=cache_dir, head=("l2", [1e-2]), optimizer="adamw" if world == "text"
                                  else "sgd"))
        assert [r.epoch for r in results] == [0, 1], f"{method} on {world}"
        assert {"id_test", "food_test" if world == "text" else "id_val"} <= set(results[-1].splits)


def test_soups_are_cooked_after_the_sweep_from_the_trials_final_weights(tmp_path, cache_dir):
    """Two FT learning rates on one seed: a uniform and a greedy soup of them, rows of their own in the report."""
    import pandas as pd

    from helpers import run_study_here

    report = run_study_here("smoke.yaml", tmp_path, "--name", "soups", "--set", "soups=true", "--set",
                            "methods={ft: {lr: [0.01, 0.03], epochs: 1}}", "--set", "wise_alphas=[]")
    soups = report["soups"]["ft"]
    assert set(soups) == {"uniform", "greedy"} and soups["uniform"]["size"] == 2 == soups["uniform"]["of"]
    assert 1 <= soups["greedy"]["size"] <= 2 and soups["greedy"]["id_test"]["n"] == 1
    rows = pd.read_parquet(tmp_path / "soups" / "soups.parquet")
    assert set(rows["split"]) >= {"id_val", "id_test", "recolour_test", "texture_test"}
    text = (tmp_path / "soups" / "report" / "report.md").read_text()
    assert "| FT uniform soup |" in text and "| FT greedy soup |" in text and "pareto.png" in text

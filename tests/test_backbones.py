"""The paper's backbones from random-weight checkpoints in the official key layouts; wrong files get one line."""
import pytest
import timm
import torch
from torchvision.transforms import InterpolationMode

from study.models import create_backbone
from study.models.pretrained import WeightsError


def test_moco_checkpoint_becomes_timm_resnet50_with_a_new_head(moco_checkpoint):
    path, encoder = moco_checkpoint
    backbone = create_backbone("resnet50-moco", num_classes=3, weights=path)
    loaded = backbone.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in encoder.items())
    assert backbone.head.weight.shape == (3, 2048) and backbone.feature_dim == 2048
    crop = backbone.transform.transforms[1]
    assert tuple(crop.size) == (224, 224)


def test_timm_clip_checkpoint_loads_from_a_local_file_and_preprocesses_as_clip_does(tmp_path):
    torch.manual_seed(0)
    original = timm.create_model("resnet50_clip.openai", pretrained=False)
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(original.state_dict(), path)
    backbone = create_backbone("clip-rn50", num_classes=5, weights=path)
    loaded = backbone.model.state_dict()
    assert torch.equal(loaded["stem.conv1.conv.weight"], original.state_dict()["stem.conv1.conv.weight"])
    assert backbone.model(torch.zeros(1, 3, 224, 224)).shape == (1, 5)
    resize, crop = backbone.transform.transforms  # CLIP's: short side to 224, bicubic; centre crop 224
    assert resize.size == [224] and resize.interpolation == InterpolationMode.BICUBIC and resize.antialias
    assert tuple(crop.size) == (224, 224)
    assert backbone.normalize.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert backbone.normalize.std == pytest.approx((0.26862954, 0.26130258, 0.27577711))


@pytest.mark.parametrize("name", ["resnet50-moco", "clip-vit-b16"])
def test_a_missing_or_wrong_weights_file_is_one_line(tmp_path, name):
    with pytest.raises(WeightsError, match="no such weights file") as error:
        create_backbone(name, num_classes=2, weights=tmp_path / "missing.pth")
    assert "\n" not in str(error.value)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable"):
        create_backbone(name, num_classes=2, weights=text)


def test_a_checkpoint_without_moco_keys_is_refused(tmp_path):
    path = tmp_path / "supervised.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}}, path)
    with pytest.raises(WeightsError, match="not a MoCo checkpoint"):
        create_backbone("resnet50-moco", num_classes=2, weights=path)

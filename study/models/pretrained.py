"""The paper's backbones: timm architectures with pretrained weights from a local file (or timm's hub).

- ``resnet50-moco``: a ResNet-50 from a MoCo checkpoint (MoCo-v2, or MoCo-TP for FMoW): the official
  ``.pth.tar`` whose ``state_dict`` keys start with ``module.encoder_q.``; the query encoder is kept, its MLP head
  dropped, and the weights go into timm's ``resnet50`` (same key names as torchvision's).
- ``clip-rn50``, ``clip-vit-b16``: CLIP's image towers as timm ships them (``resnet50_clip.openai``,
  ``vit_base_patch16_clip_224.openai``). A local file is read through timm's own loader and converter, so timm's
  hub files and OpenAI / OpenCLIP state dicts both load. The new head replaces CLIP's projection.

Every checkpoint is read with ``torch.load(weights_only=True)``. Each backbone brings its own eval transform (size,
crop, interpolation, normalisation): what a benchmark without the paper's protocol (``study.data.protocol``) is
read with.
"""
from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, resolve_data_config

from study.data.transforms import TensorNormalize, eval_transform
from study.models.backbone import Backbone, WeightsError, require_file, weights_fingerprint  # noqa: F401
from study.models.registry import register_backbone

MOCO_PREFIX = "module.encoder_q."
MOCO_SOURCE = "https://github.com/facebookresearch/moco (moco_v2_800ep_pretrain.pth.tar)"


def require_weights(backbone: str, weights: str | os.PathLike) -> Path:
    """The weights file a study was given, looked for before any work (the backbone reads it later, on a worker)."""
    return require_file(weights, f"{backbone}'s checkpoint", "the backbone's release (the README's table of "
                        "benchmarks names each)")


def unreadable(path, what: str, source: str, error: Exception) -> WeightsError:
    return WeightsError(f"{path}: not a readable {what} ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:120] if str(error) else ''}); get it from {source}")


def read_checkpoint(path: str | os.PathLike, what: str, source: str) -> dict:
    path = require_file(path, what, source)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for files that are not checkpoints
        raise unreadable(path, what, source, error) from None


def moco_state_dict(checkpoint: dict, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The query encoder of a MoCo checkpoint, in torchvision / timm ResNet-50 key names, without the MLP head."""
    state = checkpoint.get("state_dict", checkpoint)
    encoder = {key[len(MOCO_PREFIX):]: value for key, value in state.items()
               if key.startswith(MOCO_PREFIX) and not key.startswith(MOCO_PREFIX + "fc")}
    if not encoder:
        raise WeightsError(f"{path}: no '{MOCO_PREFIX}*' keys in its state_dict, so not a MoCo checkpoint; get one "
                           f"from {MOCO_SOURCE}")
    return encoder


@register_backbone("resnet50-moco")
def resnet50_moco(*, num_classes: int, weights=None, cache_dir=None, progress: bool = False) -> Backbone:
    if weights is None:
        raise WeightsError(f"resnet50-moco needs backbone_weights: PATH to a MoCo checkpoint; get one from "
                           f"{MOCO_SOURCE}")
    model = timm.create_model("resnet50", pretrained=False, num_classes=num_classes)
    encoder = moco_state_dict(read_checkpoint(weights, "MoCo ResNet-50 checkpoint", MOCO_SOURCE), weights)
    missing, unexpected = model.load_state_dict(encoder, strict=False)
    if set(missing) != {"fc.weight", "fc.bias"} or unexpected:
        raise WeightsError(f"{weights}: not a MoCo ResNet-50 (missing {sorted(set(missing) - {'fc.weight', 'fc.bias'})[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]}); get one from {MOCO_SOURCE}")
    # MoCo's own evaluation transform: resize to 256, centre-crop 224, ImageNet statistics.
    return Backbone("resnet50-moco", model, eval_transform(224, resize=256, interpolation="bilinear"),
                    TensorNormalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
                    weights_fingerprint("resnet50-moco", weights))


def timm_backbone(name: str, timm_name: str, num_classes: int, weights=None, crop_pct: float | None = None) -> Backbone:
    """timm's ``timm_name`` with its pretrained weights: from the local file ``weights`` where given (through timm's
    loader and its converter for the original format), else from timm's hub. Its eval transform is timm's for the
    model, with ``crop_pct`` instead of timm's where given."""
    what, source = f"{timm_name} checkpoint", f"https://huggingface.co/timm/{timm_name}"
    # timm reads the file itself (torch.load with weights_only=True) and converts OpenAI / OpenCLIP layouts.
    overlay = {"file": str(require_file(weights, what, source).resolve())} if weights is not None else None
    try:
        model = timm.create_model(timm_name, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay=overlay)
    except Exception as error:  # torch and timm raise several types for a file that is not this model's checkpoint
        if weights is not None:
            raise unreadable(weights, what, source, error) from None
        raise WeightsError(f"the Hugging Face Hub (timm/{timm_name}): could not load {timm_name}'s weights "
                           f"({type(error).__name__}); pass backbone_weights: PATH to its checkpoint") from None
    config = resolve_data_config({}, model=model)  # timm's eval transform for the model, rebuilt on uint8 tensors
    transform = eval_transform(config["input_size"][-1], crop_pct=crop_pct or config["crop_pct"],
                               interpolation=config["interpolation"])
    return Backbone(name, model, transform, TensorNormalize(config["mean"], config["std"]),
                    weights_fingerprint(timm_name, weights))


# CLIP's own preprocessing (and the official ImageNet config's): the short side resized to 224, bicubic, then a
# 224 centre crop, CLIP's statistics. timm's default for these models crops 0.9 of a 248-pixel resize instead.
CLIP_CROP_PCT = 1.0


@register_backbone("clip-rn50")
def clip_rn50(*, num_classes: int, weights=None, cache_dir=None, progress: bool = False) -> Backbone:
    return timm_backbone("clip-rn50", "resnet50_clip.openai", num_classes, weights, crop_pct=CLIP_CROP_PCT)


@register_backbone("clip-vit-b16")
def clip_vit_b16(*, num_classes: int, weights=None, cache_dir=None, progress: bool = False) -> Backbone:
    return timm_backbone("clip-vit-b16", "vit_base_patch16_clip_224.openai", num_classes, weights,
                         crop_pct=CLIP_CROP_PCT)

"""How the paper's code feeds each benchmark to its network: the train and test transforms and the normalisation of
the official configs (github.com/AnanyaKumar/transfer_learning, ``configs/adaptation/datasets_*.yaml``), rebuilt on
uint8 tensors.

FT, LP-FT and the LoRA methods train with the *train* transform; every evaluation, and LP's features, use the *test*
transform. The normalisation is part of the protocol too: the MoCo benchmarks' std of 0.228 for red comes from the
SwAV fine-tuning script the official configs copied, and FMoW trains with a std of 0.2289 but tests with 0.229.

A benchmark without an entry here (the embedded one, the toy) is read with its backbone's own transform and
normalisation, for training as for evaluation; so is every benchmark in a study with ``transforms: backbone``. An
entry without statistics (``mean`` None: the digits) fixes the geometry only, normalised as the backbone is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torchvision.transforms import InterpolationMode, v2

from study.data.transforms import TensorNormalize

Step = tuple  # ("resize", size, interpolation) | ("center_crop", size) | ("random_crop", size) |
#               ("random_resized_crop", size) | ("flip",); a size is an int (the short side) or [height, width]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
SWAV_STD = (0.228, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def _resize(size, interpolation: str = "bilinear"):
    return v2.Resize(size, interpolation=InterpolationMode(interpolation), antialias=True)


STEPS: dict[str, Callable] = {
    "resize": _resize,
    "center_crop": v2.CenterCrop,
    "random_crop": v2.RandomCrop,
    "random_resized_crop": lambda size: v2.RandomResizedCrop(size, antialias=True),
    "flip": v2.RandomHorizontalFlip,
}


def compose(steps: tuple[Step, ...]) -> v2.Compose | None:
    """The steps as one uint8-in, uint8-out transform (None: no steps)."""
    return v2.Compose([STEPS[name](*args) for name, *args in steps]) if steps else None


@dataclass(frozen=True)
class Protocol:
    train: tuple[Step, ...]
    test: tuple[Step, ...]
    mean: tuple[float, float, float] | None  # None: the backbone's normalisation
    std: tuple[float, float, float] | None
    train_std: tuple[float, float, float] | None = None  # where training normalises differently (FMoW)


MOCO_BREEDS = Protocol(train=(("random_resized_crop", 224), ("flip",)), test=(("resize", 256), ("center_crop", 224)),
                       mean=IMAGENET_MEAN, std=SWAV_STD)
PROTOCOLS: dict[str, Protocol] = {
    "cifar10": Protocol(train=(("resize", 224),), test=(("resize", [224, 224]),), mean=IMAGENET_MEAN, std=SWAV_STD),
    "living17": MOCO_BREEDS,
    "entity30": MOCO_BREEDS,
    "domainnet": Protocol(train=(("resize", [256, 256], "bicubic"), ("random_crop", 224), ("flip",)),
                          test=(("resize", [224, 224], "bicubic"),), mean=CLIP_MEAN, std=CLIP_STD),
    "fmow": Protocol(train=(), test=(), mean=IMAGENET_MEAN, std=(0.229, 0.224, 0.225),
                     train_std=(0.2289, 0.224, 0.225)),
    "imagenet": Protocol(train=(("resize", 224, "bicubic"), ("center_crop", 224)),
                         test=(("resize", 224, "bicubic"), ("center_crop", 224)), mean=CLIP_MEAN, std=CLIP_STD),
    # The digits are cropped to the digit already (study.data.digits): fed whole, never cropped again.
    "digits": Protocol(train=(), test=(), mean=None, std=None),
    "digits-full": Protocol(train=(("resize", [224, 224], "bicubic"),), test=(("resize", [224, 224], "bicubic"),),
                            mean=None, std=None),
}


@dataclass(frozen=True)
class Inputs:
    """What a benchmark's images go through on their way into a backbone: uint8 transforms (for evaluation and LP's
    features, and for training) and the normalisations on the device that follow them."""

    test: Callable | None
    train: Callable | None
    normalize: Callable | None
    train_normalize: Callable | None

    def key(self) -> str:
        """What the test-time inputs are, for cache keys (the features depend on them)."""
        return f"{self.test!r}|{self.normalize!r}"


def inputs_for(benchmark: str, backbone, transforms: str = "paper", protocol: Protocol | None = None) -> Inputs:
    """The inputs of ``benchmark`` (a name) for ``backbone`` (a ``Backbone``): the paper's protocol where it has one
    (or the benchmark's own ``protocol``: a study file's transforms) and ``transforms`` is "paper", else the
    backbone's own transform and normalisation, without augmentation."""
    protocol = (protocol or PROTOCOLS.get(benchmark)) if transforms == "paper" else None
    if protocol is None:
        return Inputs(backbone.transform, backbone.transform, backbone.normalize, backbone.normalize)
    if protocol.mean is None:
        return Inputs(compose(protocol.test), compose(protocol.train), backbone.normalize, backbone.normalize)
    normalize = TensorNormalize(protocol.mean, protocol.std)
    train_normalize = TensorNormalize(protocol.mean, protocol.train_std) if protocol.train_std else normalize
    return Inputs(compose(protocol.test), compose(protocol.train), normalize, train_normalize)

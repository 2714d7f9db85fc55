"""ImageNet (ID) -> ImageNet-V2, -R, -Sketch and -A (OOD), from their released folder trees.

Layout under the data root::

    imagenet/train/<wnid>/*.JPEG, imagenet/val/<wnid>/*.JPEG   (val sorted into class folders, as ImageFolder wants)
    imagenetv2-matched-frequency-format-val/<0..999>/*.jpeg    (folder = class index, not a wnid)
    imagenet-r/<wnid>/*.jpg, imagenet-a/<wnid>/*.jpg           (200-class subsets: logits are masked to them)
    sketch/<wnid>/*.JPEG                                       (ImageNet-Sketch, all 1000 classes)

The class order is the sorted wnids of ``imagenet/train``, as torchvision's ImageFolder and every ImageNet model
use. ImageNet's official val set is the ID test set; ID val is held out of train. Each OOD set ships as one split
and is halved into val (the oracle's) and test.
"""
from __future__ import annotations

from pathlib import Path

from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark
from study.data.files import (DataError, ImageFiles, halves, holdout, id_val_size, on_disk_fingerprint, require,
                              resolve_data_root)
from study.data.registry import register_benchmark

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
SOURCES = {
    "imagenet": "https://image-net.org (ILSVRC2012 train and val, val sorted into wnid folders)",
    "imagenetv2-matched-frequency-format-val": "https://github.com/modestyachts/ImageNetV2 (matched-frequency)",
    "imagenet-r": "https://github.com/hendrycks/imagenet-r",
    "imagenet-a": "https://github.com/hendrycks/natural-adv-examples",
    "sketch": "https://github.com/HaohanWang/ImageNet-Sketch (ImageNet-Sketch.zip extracts to sketch/)",
}


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(root: Path, classes: list[str], source: str) -> ImageFiles:
    """Every image under ``root/<class>/``, labelled with its class's index in ``classes``."""
    require(root, "class folders", source)
    paths, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name not in classes:
            raise DataError(f"{folder}: class {folder.name!r} is not one of the {len(classes)} ImageNet classes "
                            f"in imagenet/train; get the original release from {source}")
        files = images_in(folder)
        paths += files
        labels += [classes.index(folder.name)] * len(files)
    if not paths:
        raise DataError(f"{root}: no images in its class folders; get them from {source}")
    return ImageFiles(paths, labels)


def imagenet_v2(root: Path, num_classes: int) -> ImageFiles:
    """ImageNet-V2's folders are class indices: sorted as strings they would be 0, 1, 10, 100, ... so the label is
    ``int(folder)``, never the folder's sorted position."""
    name = "imagenetv2-matched-frequency-format-val"
    folder = require(root / name, "ImageNet-V2 matched-frequency", SOURCES[name])
    paths, labels = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not sub.name.isdigit() or int(sub.name) >= num_classes:
            raise DataError(f"{sub}: ImageNet-V2 folders are class indices 0..{num_classes - 1}; get the release "
                            f"from {SOURCES[name]}")
        files = images_in(sub)
        paths += files
        labels += [int(sub.name)] * len(files)
    return ImageFiles(paths, labels)


def imagenet_classes(root: Path) -> list[str]:
    train = require(root / "imagenet" / "train", "ImageNet's train class folders", SOURCES["imagenet"])
    return sorted(p.name for p in train.iterdir() if p.is_dir())


@register_benchmark("imagenet")
def imagenet(*, cache_dir=None, data_root=None) -> Benchmark:
    root = resolve_data_root(data_root)
    classes = imagenet_classes(root)
    train_all = class_folders(root / "imagenet" / "train", classes, SOURCES["imagenet"])
    train, id_val = holdout(train_all, id_val_size(len(train_all)))
    splits = {TRAIN: train, ID_VAL: id_val,
              ID_TEST: class_folders(root / "imagenet" / "val", classes, SOURCES["imagenet"])}
    ood = {"imagenet_v2": imagenet_v2(root, len(classes))}
    subsets = {}
    for domain, folder in (("imagenet_r", "imagenet-r"), ("imagenet_sketch", "sketch"), ("imagenet_a", "imagenet-a")):
        ood[domain] = class_folders(root / folder, classes, SOURCES[folder])
        present = tuple(sorted(set(ood[domain].labels.tolist())))
        if domain != "imagenet_sketch":  # R and A cover 200 classes: predictions are restricted to those
            subsets.update({f"{domain}_val": present, f"{domain}_test": present})
    for domain, dataset in ood.items():
        splits[f"{domain}_val"], splits[f"{domain}_test"] = halves(dataset)
    return Benchmark(name="imagenet", classes=tuple(classes), ood_domains=tuple(ood), splits=splits,
                     fingerprint=on_disk_fingerprint("imagenet", root, splits), source=str(root),
                     class_subsets=subsets)

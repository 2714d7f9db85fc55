"""CIFAR-10 (ID) -> STL-10 and CIFAR-10.1 (OOD), read from their official files.

Layout under the data root::

    cifar-10-batches-py/   data_batch_1..5, test_batch, batches.meta   (torchvision's CIFAR10 download, python pickles)
    stl10_binary/          test_X.bin, test_y.bin, class_names.txt        (torchvision's STL10 download)
    cifar10.1/             cifar10.1_v6_data.npy, cifar10.1_v6_labels.npy  (github.com/modestyachts/CIFAR-10.1, datasets/)

torchvision's own classes check every file's md5, so they refuse anything but the original archives; these readers
read the same formats directly. STL-10 keeps the 9 classes it shares with CIFAR-10 (monkey is dropped; its "car"
is CIFAR-10's "automobile"), labelled with CIFAR-10's indices.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark
from study.data.files import (DataError, ImageArrays, damaged, halves, holdout, id_val_size, on_disk_fingerprint,
                              reading, require, resolve_data_root)
from study.data.registry import register_benchmark

CIFAR_SOURCE = "torchvision.datasets.CIFAR10(root, download=True) or https://www.cs.toronto.edu/~kriz/cifar.html"
STL_SOURCE = "torchvision.datasets.STL10(root, split='test', download=True) or https://cs.stanford.edu/~acoates/stl10/"
CIFAR101_SOURCE = "https://github.com/modestyachts/CIFAR-10.1 (datasets/cifar10.1_v6_*.npy)"
STL_ALIASES = {"car": "automobile"}


def read_cifar10(root: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images [N, 32, 32, 3] uint8, labels and class names from torchvision's python-pickle CIFAR-10 files."""
    folder = require(root / "cifar-10-batches-py", "CIFAR-10's python batches", CIFAR_SOURCE)
    images, labels = [], []
    for name in files:
        path = require(folder / name, "a CIFAR-10 batch", CIFAR_SOURCE)
        with reading(path, "CIFAR-10 batch", CIFAR_SOURCE):
            batch = _unpickle(path)
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            if len(data) != len(batch["labels"]):
                raise ValueError(f"{len(data)} images but {len(batch['labels'])} labels")
        images.append(data)
        labels.extend(batch["labels"])
    meta = require(folder / "batches.meta", "CIFAR-10's class names", CIFAR_SOURCE)
    with reading(meta, "CIFAR-10 class-name file", CIFAR_SOURCE):
        classes = _unpickle(meta)["label_names"]
    return np.concatenate(images), np.asarray(labels), classes


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def read_stl10(root: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images [N, 96, 96, 3] uint8, labels 0..9 and class names from STL-10's binary files."""
    folder = require(root / "stl10_binary", "STL-10's binary files", STL_SOURCE)
    images_file, labels_file = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    raw = np.fromfile(require(images_file, "STL-10 images", STL_SOURCE), dtype=np.uint8)
    if raw.size % (3 * 96 * 96):
        raise damaged(images_file, "STL-10 image file", f"{raw.size} bytes is not a whole number of 3x96x96 images",
                      STL_SOURCE)
    images = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2).transpose(0, 2, 3, 1)  # stored column-major
    labels = np.fromfile(require(labels_file, "STL-10 labels", STL_SOURCE), dtype=np.uint8).astype(np.int64) - 1
    if len(labels) != len(images) or not ((labels >= 0) & (labels < 10)).all():
        raise damaged(labels_file, "STL-10 label file", f"{len(labels)} labels (1 to 10) expected {len(images)}, one "
                      f"per image of {images_file.name}", STL_SOURCE)
    classes = require(folder / "class_names.txt", "STL-10's class names", STL_SOURCE).read_text().split()
    return np.ascontiguousarray(images), labels, classes


def stl_to_cifar(images, labels, stl_classes: list[str], cifar_classes: list[str]):
    """Keep the classes STL-10 shares with CIFAR-10 and relabel them with CIFAR-10's indices."""
    mapping = {i: cifar_classes.index(STL_ALIASES.get(name, name))
               for i, name in enumerate(stl_classes) if STL_ALIASES.get(name, name) in cifar_classes}
    keep = np.isin(labels, list(mapping))
    return images[keep], np.vectorize(mapping.get)(labels[keep])


def read_cifar101(root: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = require(root / "cifar10.1", "CIFAR-10.1 v6's .npy files", CIFAR101_SOURCE)
    arrays = []
    for name, what in (("cifar10.1_v6_data.npy", "CIFAR-10.1 images"),
                       ("cifar10.1_v6_labels.npy", "CIFAR-10.1 labels")):
        path = require(folder / name, what, CIFAR101_SOURCE)
        with reading(path, f"{what} file", CIFAR101_SOURCE):
            arrays.append(np.load(path))
    images, labels = arrays
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
        raise DataError(f"{folder}: expected images [N, 32, 32, 3] and N labels, got {images.shape} and "
                        f"{labels.shape}; get the v6 files from {CIFAR101_SOURCE}")
    return images.astype(np.uint8), labels.astype(np.int64)


@register_benchmark("cifar10")
def cifar10(*, cache_dir=None, data_root=None) -> Benchmark:
    root = resolve_data_root(data_root)
    train_x, train_y, classes = read_cifar10(root, [f"data_batch_{i}" for i in range(1, 6)])
    test_x, test_y, _ = read_cifar10(root, ["test_batch"])
    train, id_val = holdout(ImageArrays(train_x, train_y), id_val_size(len(train_y)))
    stl_x, stl_y, stl_classes = read_stl10(root)
    stl_val, stl_test = halves(ImageArrays(*stl_to_cifar(stl_x, stl_y, stl_classes, classes)))
    c101_val, c101_test = halves(ImageArrays(*read_cifar101(root)))
    splits = {TRAIN: train, ID_VAL: id_val, ID_TEST: ImageArrays(test_x, test_y), "stl10_val": stl_val,
              "stl10_test": stl_test, "cifar10_1_val": c101_val, "cifar10_1_test": c101_test}
    return Benchmark(name="cifar10", classes=tuple(classes), ood_domains=("stl10", "cifar10_1"), splits=splits,
                     fingerprint=on_disk_fingerprint("cifar10", root, splits), source=str(root))

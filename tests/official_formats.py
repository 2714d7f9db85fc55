"""Tiny data sets written in their official on-disk formats (file names, binary layouts, CSV columns, folder trees),
with made-up class ids, for the loaders to read."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STL_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def pixels(n: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def write_cifar10(root: Path, per_batch: int = 4, test: int = 6) -> dict[str, np.ndarray]:
    """torchvision's cifar-10-batches-py: pickled dicts of 'data' [N, 3072] (CHW rows) and 'labels'."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for i, (name, n) in enumerate([(f"data_batch_{b}", per_batch) for b in range(1, 6)] + [("test_batch", test)]):
        images = pixels(n, 32, i)
        labels = [(i + j) % 10 for j in range(n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": images.transpose(0, 3, 1, 2).reshape(n, -1), "labels": labels,
                         "batch_label": name, "filenames": [f"{j}.png" for j in range(n)]}, f)
        written[name] = images
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072}, f)
    return written


def write_stl10(root: Path, labels: list[int]) -> np.ndarray:
    """STL-10's binary test files: uint8 images stored column-major, labels 1..10, class_names.txt."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    images = pixels(len(labels), 96, 99)
    images.transpose(0, 3, 2, 1).tofile(folder / "test_X.bin")  # [N, C, W, H]: each channel column by column
    np.asarray([label + 1 for label in labels], dtype=np.uint8).tofile(folder / "test_y.bin")
    (folder / "class_names.txt").write_text("\n".join(STL_CLASSES) + "\n")
    return images


def write_cifar101(root: Path, n: int = 8) -> None:
    folder = root / "cifar10.1"
    folder.mkdir(parents=True)
    np.save(folder / "cifar10.1_v6_data.npy", pixels(n, 32, 7))
    np.save(folder / "cifar10.1_v6_labels.npy", (np.arange(n) % 10).astype(np.int32))


def write_images(folder: Path, count: int, suffix: str = ".JPEG", seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, array in enumerate(pixels(count, 16, seed)):
        path = folder / f"img_{i}{suffix}"
        mode = "L" if i == 0 and suffix != ".png" else "RGB"  # one grayscale JPEG, as ImageNet has
        Image.fromarray(array).convert(mode).save(path)
        paths.append(path)
    return paths


def write_imagenet(root: Path, wnids: list[str], r_and_a: list[str], per_class: int = 3) -> None:
    """ImageNet train/val class folders, ImageNet-V2 (folders 0..K-1), -R, -A (a class subset), -Sketch."""
    for i, wnid in enumerate(wnids):
        write_images(root / "imagenet" / "train" / wnid, per_class, seed=i)
        write_images(root / "imagenet" / "val" / wnid, 1, seed=100 + i)
        write_images(root / "imagenetv2-matched-frequency-format-val" / str(i), 2, ".jpeg", seed=200 + i)
        write_images(root / "sketch" / wnid, 2, seed=300 + i)
    for i, wnid in enumerate(r_and_a):
        write_images(root / "imagenet-r" / wnid, 2, ".jpg", seed=400 + i)
        write_images(root / "imagenet-a" / wnid, 2, ".jpg", seed=500 + i)


def write_domainnet(root: Path, classes: dict[int, str], per_class: int = 3) -> None:
    """The domain folders and SENTRY's *_mini.txt lists ("<domain>/<class>/<file> <label>")."""
    base = root / "domainnet"
    (base / "SENTRY_splits").mkdir(parents=True)
    for domain in ("sketch", "real", "painting", "clipart"):
        for split in ("train", "test"):
            lines = []
            for label, name in classes.items():
                for path in write_images(base / domain / name, per_class, ".jpg", seed=label):
                    renamed = path.with_name(f"{domain}_{split}_{label:03d}_{path.stem}.jpg")
                    path.rename(renamed)
                    lines.append(f"{renamed.relative_to(base).as_posix()} {label}")
            (base / "SENTRY_splits" / f"{domain}_{split}_mini.txt").write_text("\n".join(lines) + "\n")


FMOW_COLUMNS = ["split", "img_filename", "img_path", "spatial_reference", "epsg", "category", "visible", "img_width",
                "img_height", "country_code", "cloud_cover", "timestamp", "lat", "lon"]


def write_fmow(root: Path, rows: list[tuple[str, str, str, int]]) -> None:
    """WILDS fmow_v1.1: rgb_metadata.csv, country_code_mapping.csv, images/rgb_img_<row>.png, RELEASE_v1.1.txt.
    ``rows`` are (split, category, country code, year)."""
    import pandas as pd

    folder = root / "fmow_v1.1"
    (folder / "images").mkdir(parents=True)
    (folder / "RELEASE_v1.1.txt").write_text("v1.1\n")
    records = []
    for i, (split, category, country, year) in enumerate(rows):
        records.append({"split": split, "img_filename": f"{category}_{i}_rgb.jpg", "img_path": f"{split}/{category}",
                        "spatial_reference": "WGS84", "epsg": 4326, "category": category, "visible": True,
                        "img_width": 16, "img_height": 16, "country_code": country, "cloud_cover": 0,
                        "timestamp": f"{year}-06-01T10:00:00Z", "lat": 0.0, "lon": 0.0})
        Image.fromarray(pixels(1, 16, i)[0]).save(folder / "images" / f"rgb_img_{i}.png")
    pd.DataFrame(records, columns=FMOW_COLUMNS).to_csv(folder / "rgb_metadata.csv", index=False)
    pd.DataFrame({"name": ["Brazil", "Kenya", "France", "Japan"], "alpha-2": ["BR", "KE", "FR", "JP"],
                  "alpha-3": ["BRA", "KEN", "FRA", "JPN"], "region": ["Americas", "Africa", "Europe", "Asia"]}
                 ).to_csv(folder / "country_code_mapping.csv", index=False)


def breeds_world():
    """A hierarchy of BREEDS' shape: under the root, a chain to the living-thing node n00004258 (depth 3) and 30
    nodes at depth 4 (Entity-30's level) of 8 ImageNet leaves each. The first 17 reach their leaves through one
    depth-5 node (Living-17's level) that splits in two groups of 4; the other 13 hold their 8 leaves directly. So
    Living-17's rule finds 17 superclasses and Entity-30's finds 30. Returns (edges, leaves, names)."""
    hierarchy = {"n00001740": ["n00000001"], "n00000001": ["n00000002"], "n00000002": ["n00004258"],
                 "n00004258": [f"n0200{i:04d}" for i in range(30)]}
    leaves, names = [], {}
    for i in range(30):
        own = [f"n0300{8 * i + j:04d}" for j in range(8)]
        leaves += own
        names[f"n0200{i:04d}"] = f"entity{i}"
        if i < 17:
            hierarchy[f"n0200{i:04d}"] = [f"n0210{i:04d}"]
            hierarchy[f"n0210{i:04d}"] = [f"n0220{2 * i:04d}", f"n0220{2 * i + 1:04d}"]
            hierarchy[f"n0220{2 * i:04d}"], hierarchy[f"n0220{2 * i + 1:04d}"] = own[:4], own[4:]
            names[f"n0210{i:04d}"] = f"living{i}"
        else:
            hierarchy[f"n0200{i:04d}"] = own
    return hierarchy, leaves, names


def write_breeds(root: Path, hierarchy: dict[str, list[str]], leaves: list[str], names: dict[str, str],
                 images: tuple[int, int] = (3, 1)) -> None:
    """BREEDS' three hierarchy files (class info JSON, "parent child" edges, "wnid<TAB>name") and ImageNet folders
    for every leaf, with ``images`` (train, val) images each."""
    folder = root / "breeds"
    folder.mkdir(parents=True)
    (folder / "dataset_class_info.json").write_text(
        json.dumps([[i, wnid, names.get(wnid, wnid)] for i, wnid in enumerate(leaves)]))
    (folder / "class_hierarchy.txt").write_text(
        "".join(f"{parent} {child}\n" for parent, children in hierarchy.items() for child in children))
    (folder / "node_names.txt").write_text("".join(f"{wnid}\t{name}\n" for wnid, name in names.items()))
    for i, wnid in enumerate(leaves):
        write_images(root / "imagenet" / "train" / wnid, images[0], seed=i)
        write_images(root / "imagenet" / "val" / wnid, images[1], seed=50 + i)
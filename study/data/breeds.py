"""BREEDS Living-17 and Entity-30: ImageNet superclasses whose subclasses differ between ID (source) and OOD (target).

Layout under the data root::

    imagenet/train/<wnid>/*.JPEG, imagenet/val/<wnid>/*.JPEG     (as for the ImageNet benchmark)
    breeds/dataset_class_info.json, class_hierarchy.txt, node_names.txt   (github.com/MadryLab/BREEDS-Benchmarks,
                                                                          imagenet_class_hierarchy/modified/)

The superclasses and the source/target subclass split follow the BREEDS definition (Santurkar et al. 2021, the
``robustness`` library's ``make_living17`` / ``make_entity30`` with ``split="rand"``): the hierarchy is cut at a
fixed depth (the longest path from the root), superclasses with enough ImageNet leaves are kept in sorted order,
and one ``RandomState(2)``, shared across them, draws each superclass's subclasses, the first half the source.

ID: the source subclasses' train images (ID val held out of them) and val images (ID test). OOD (``target``): the
target subclasses' val images (test) and a held-out part of their train images (the oracle's val).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark
from study.data.files import (DataError, ImageFiles, damaged, holdout, id_val_size, on_disk_fingerprint, reading,
                              require, resolve_data_root)
from study.data.imagenet import SOURCES, images_in
from study.data.registry import register_benchmark

HIERARCHY_SOURCE = "https://github.com/MadryLab/BREEDS-Benchmarks (imagenet_class_hierarchy/modified/)"
ROOT_WNID = "n00001740"
SEED = 2


class Hierarchy:
    """The ImageNet class hierarchy restricted to the ancestors of ImageNet's classes (the leaves)."""

    def __init__(self, folder: Path):
        info_file = require(folder / "dataset_class_info.json", "BREEDS' class info", HIERARCHY_SOURCE)
        with reading(info_file, "BREEDS class-info file", HIERARCHY_SOURCE):
            self.leaves = {wnid for _, wnid, _ in json.loads(info_file.read_text())}
        edges = [line.split() for line in
                 require(folder / "class_hierarchy.txt", "BREEDS' hierarchy", HIERARCHY_SOURCE).read_text().splitlines()
                 if line.strip()]
        names = require(folder / "node_names.txt", "BREEDS' node names", HIERARCHY_SOURCE).read_text().splitlines()
        self.names = dict(line.split("\t", 1) for line in names if "\t" in line)
        parents: dict[str, set[str]] = {}
        for parent, child in edges:
            parents.setdefault(child, set()).add(parent)
        relevant, frontier = set(self.leaves), set(self.leaves)
        while frontier:  # every ancestor of a leaf
            frontier = {p for node in frontier for p in parents.get(node, ())} - relevant
            relevant |= frontier
        self.children: dict[str, list[str]] = {}
        for parent, child in edges:
            if child in relevant and parent in relevant:
                self.children.setdefault(parent, [])
                if child not in self.children[parent]:
                    self.children[parent].append(child)
        if ROOT_WNID not in self.children:
            raise DataError(f"{folder / 'class_hierarchy.txt'}: the root {ROOT_WNID} has no children; get the files "
                            f"from {HIERARCHY_SOURCE}")
        self.levels = self._levels()

    def _levels(self) -> dict[str, int]:
        """Each node's depth: the longest path from the root, as BREEDS counts it."""
        depth = {ROOT_WNID: 0}
        frontier = [ROOT_WNID]
        while frontier:
            following = []
            for node in frontier:
                for child in self.children.get(node, ()):
                    if depth.get(child, -1) < depth[node] + 1:
                        depth[child] = depth[node] + 1
                        following.append(child)
            frontier = following
        return depth

    def descendants(self, node: str) -> set[str]:
        found, frontier = {node}, [node]
        while frontier:
            frontier = [c for n in frontier for c in self.children.get(n, ()) if c not in found]
            found.update(frontier)
        return found

    def leaves_under(self, node: str) -> list[str]:
        return sorted(n for n in self.descendants(node) if n in self.leaves)

    def split_superclasses(self, level: int, ancestor: str | None, subclasses: int):
        """[(superclass, source leaves, target leaves)] in sorted superclass order."""
        allowed = self.descendants(ancestor) if ancestor else None
        nodes = sorted(n for n, d in self.levels.items() if d == level and (allowed is None or n in allowed))
        chosen = [n for n in nodes if len(self.leaves_under(n)) >= subclasses]
        rng = np.random.RandomState(SEED)
        out = []
        for node in chosen:
            branch = node
            while len(self.children.get(branch, ())) == 1:  # down to the first node that branches
                branch = self.children[branch][0]
            pool = sorted(leaf for child in sorted(self.children.get(branch, [])) for leaf in self.leaves_under(child))
            drawn = list(rng.choice(pool, subclasses, replace=False))
            out.append((node, drawn[: subclasses // 2], drawn[subclasses // 2:]))
        return out


def breeds(name: str, level: int, ancestor: str | None, subclasses: int, superclasses: int, root: Path) -> Benchmark:
    hierarchy = Hierarchy(require(root / "breeds", "BREEDS' hierarchy files", HIERARCHY_SOURCE))
    groups = hierarchy.split_superclasses(level, ancestor, subclasses)
    if len(groups) != superclasses:  # e.g. a truncated class_hierarchy.txt, which still parses
        raise damaged(root / "breeds" / "class_hierarchy.txt", "BREEDS hierarchy",
                      f"it yields {len(groups)} superclasses of {subclasses} ImageNet classes at level {level}, "
                      f"{name} has {superclasses}", HIERARCHY_SOURCE)

    def images(split: str, part: int) -> ImageFiles:
        paths, labels = [], []
        for label, group in enumerate(groups):
            for wnid in group[part]:
                folder = require(root / "imagenet" / split / wnid, "an ImageNet class folder", SOURCES["imagenet"])
                files = images_in(folder)
                paths += files
                labels += [label] * len(files)
        return ImageFiles(paths, labels)

    source, target = images("train", 1), images("train", 2)
    train, id_val = holdout(source, id_val_size(len(source)))
    splits = {TRAIN: train, ID_VAL: id_val, ID_TEST: images("val", 1),
              "target_val": holdout(target, id_val_size(len(target)))[1], "target_test": images("val", 2)}
    classes = tuple(hierarchy.names.get(group[0], group[0]) for group in groups)
    return Benchmark(name=name, classes=classes, ood_domains=("target",), splits=splits,
                     fingerprint=on_disk_fingerprint(name, root, splits), source=str(root))


@register_benchmark("living17")
def living17(*, cache_dir=None, data_root=None) -> Benchmark:
    return breeds("living17", level=5, ancestor="n00004258", subclasses=4, superclasses=17,
                  root=resolve_data_root(data_root))


@register_benchmark("entity30")
def entity30(*, cache_dir=None, data_root=None) -> Benchmark:
    return breeds("entity30", level=4, ancestor=None, subclasses=8, superclasses=30, root=resolve_data_root(data_root))

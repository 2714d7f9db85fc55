"""The digits track's input size: do EfficientNet-Lite0's ImageNet features still matter at it? LP on the pretrained
network's features against LP on the same network with random weights, at several sizes, and a logistic regression
on the pixels themselves (both domains cropped to the digit and resized alike).

    python benchmarks/digits_features.py                 # sizes 32, 40, 48, 64 (the study's is 40)

LP is the study's own (``linear_probe`` over a grid of L2 strengths, the ID-val best); the pixel baseline is
scikit-learn's logistic regression on [0, 1] pixels at 28 px, C chosen by ID val. Accuracy in % on ID test (MNIST)
and OOD test (UCI digits). Needs `pip install -e ".[bench]"`.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import timm
import torch
from sklearn.linear_model import LogisticRegression

from study.data import create_benchmark
from study.data.protocol import inputs_for
from study.methods import linear_probe, load_features
from study.methods.features import cached_features
from study.models import Backbone, create_backbone

GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def lp(features) -> tuple[float, float]:
    """ID test and UCI test accuracy of the LP selected by ID val."""
    results = [next(linear_probe(features, l2=l2, num_classes=10)) for l2 in GRID]
    best = max(results, key=lambda result: result.splits["id_val"]["acc"])
    return best.splits["id_test"]["acc"], best.splits["uci_test"]["acc"]


def pixels(size: int, cache) -> tuple[float, float]:
    data = create_benchmark("digits", cache_dir=cache, input_size=size)

    def flat(split):
        return data.splits[split].images[:, 0].flatten(1).float().numpy() / 255, data.splits[split].labels.numpy()

    (x, y), (xv, yv) = flat("train"), flat("id_val")
    best = max((LogisticRegression(C=c, max_iter=3000).fit(x, y) for c in (0.01, 0.1, 1.0, 10.0)),
               key=lambda model: model.score(xv, yv))
    return tuple(100 * best.score(*flat(split)) for split in ("id_test", "uci_test"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 40, 48, 64])
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as cache:
        rows = []
        for size in args.sizes:
            data = create_benchmark("digits", cache_dir=cache, input_size=size)
            pretrained = create_backbone("efficientnet-lite0", num_classes=10)
            torch.manual_seed(0)
            random = Backbone("efficientnet-lite0-random", timm.create_model("tf_efficientnet_lite0", num_classes=10),
                              pretrained.transform, pretrained.normalize, "random-seed0")
            found = []
            for backbone in (pretrained, random):
                start = time.perf_counter()
                file = cached_features(backbone, data, inputs_for("digits", backbone), cache_dir=cache)
                seconds = time.perf_counter() - start
                found.append((*lp(load_features(file)), seconds))
            rows.append((size, *found[0], *found[1]))
        print("| input | ImageNet features: LP ID / OOD | random weights: LP ID / OOD | margin ID / OOD |")
        print("|---|---|---|---|")
        for size, pid, pood, _, rid, rood, _ in rows:
            print(f"| {size} px | {pid:.1f} / {pood:.1f} | {rid:.1f} / {rood:.1f} | {pid - rid:+.1f} / {pood - rood:+.1f} |")
        pid, pood = pixels(28, cache)
        print(f"\nlogistic regression on the pixels (28 px, cropped): ID {pid:.1f} / OOD {pood:.1f}")


if __name__ == "__main__":
    main()

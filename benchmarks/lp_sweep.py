"""The LP sweep: this project's warm-started torch L-BFGS against the paper's sklearn loop, side by side.

    python benchmarks/lp_sweep.py                  # the embedded benchmark's glyphnet features (cached)
    python benchmarks/lp_sweep.py --device cuda    # the torch solver on a GPU (sklearn stays on the CPU)

Both solve the same 50 L2 strengths (sklearn's C from 1e-7 to 1e2, strong to weak) on the same cached features and
pick the first maximum of ID-val accuracy. The sklearn loop is the paper's: one ``LogisticRegression(lbfgs,
warm_start=True, max_iter=200)`` refitted along the path on scalar-standardised features. Goal: >= 20x faster at
<= 0.2 pp difference in the selected ID-val accuracy.
"""
from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import torch

from study.data import ID_VAL, TRAIN, create_benchmark
from study.methods import cached_features
from study.methods.lp import best_head, lp_sweep, to_l2
from study.methods.metrics import score
from study.models import create_backbone

C_VALUES = np.logspace(-7, 2, 50)


def sklearn_sweep(features) -> tuple[float, float]:
    """(seconds, selected ID-val accuracy) of the paper's loop."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    (x, y), (vx, vy) = features[TRAIN], features[ID_VAL]
    mean, std = x.mean().item(), x.std().item()
    x, vx = ((x - mean) / std).numpy(), ((vx - mean) / std).numpy()
    start = time.perf_counter()
    model, accuracies = LogisticRegression(warm_start=True, max_iter=200), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in C_VALUES:
            model.C = c
            model.fit(x, y.numpy())
            accuracies.append(100.0 * (model.predict(vx) == vy.numpy()).mean())
    return time.perf_counter() - start, max(accuracies)


def torch_sweep(features, num_classes: int, device: str) -> tuple[float, float]:
    features = {split: (x.to(device), y.to(device)) for split, (x, y) in features.items()}
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    sweep = lp_sweep(features, to_l2("C", C_VALUES, features), num_classes)
    _, head = best_head(features, sweep)
    accuracy = score(head.logits(features[ID_VAL][0]), features[ID_VAL][1])["acc"]
    return time.perf_counter() - start, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = create_benchmark("glyphs")
    encoder = create_backbone("glyphnet", num_classes=data.num_classes, progress=True)
    data.set_transform(encoder.transform)
    features = cached_features(encoder, data, progress=True)
    n, d = features[TRAIN][0].shape
    sk_time, sk_acc = sklearn_sweep(features)
    ours_time, ours_acc = torch_sweep(features, data.num_classes, args.device)
    print(f"machine: {platform.node()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"features {n} x {d}, {data.num_classes} classes, {len(C_VALUES)} C values\n")
    print("| solver | wall time | selected ID-val accuracy |\n|---|---|---|")
    print(f"| sklearn lbfgs, warm start, max_iter=200 (the paper's loop) | {sk_time:.2f} s | {sk_acc:.2f} |")
    print(f"| torch L-BFGS sweep, warm-started ({args.device}) | {ours_time:.2f} s | {ours_acc:.2f} |")
    print(f"\nspeed-up: {sk_time / ours_time:.1f}x; accuracy difference: {abs(sk_acc - ours_acc):.2f} pp")


if __name__ == "__main__":
    main()

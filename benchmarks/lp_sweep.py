"""LP at a realistic shape: the paper's 50 values of C through `study run` (Ray, MLflow, the report), against the
paper's sklearn loop on the same features.

    python benchmarks/lp_sweep.py                          # 20,000 x 2,048 train features, 40 classes
    python benchmarks/lp_sweep.py --benchmark cifar10      # CIFAR-10 with a ResNet-50: 45,000 x 2,048, 10 classes
    python benchmarks/lp_sweep.py --bare --device cuda     # the Ray-free solver only (the GPU machine has no Ray)

The features are synthetic (class means in a 64-dimensional subspace, noise, a ReLU, as pooled CNN features are
non-negative) and take the place of a benchmark's extracted features in a cache of the benchmark's own, so
`study run` finds them and its LP trials solve on them: the embedded backbone is pretrained into that cache first,
untimed. ``glyphs`` is the embedded benchmark (40 classes); ``cifar10`` is read from tiny files in CIFAR-10's,
STL-10's and CIFAR-10.1's formats written here, its features given the paper's CIFAR-10 split sizes. The study runs LP only, one seed, `lp_cpus` = every core (one LP trial at a time, as the path is solved
once and then read). The sklearn loop is the paper's: one ``LogisticRegression(lbfgs, warm_start=True,
max_iter=200)`` refitted along the path, strong to weak, on scalar-standardised features; the first maximum of
ID-val accuracy is selected. Goals: >= 5x faster end to end on 2 cores, >= 20x on a GPU, the same selection within
0.2 pp.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
C_VALUES = np.logspace(-7, 2, 50)
# (train, classes, {evaluation split: size}) of each benchmark's features
SHAPES = {
    "glyphs": (20_000, 40, {split: 5_000 for split in ("id_val", "id_test", "recolour_val", "recolour_test",
                                                        "texture_val", "texture_test")}),
    "cifar10": (45_000, 10, {"id_val": 5_000, "id_test": 10_000, "stl10_val": 3_600, "stl10_test": 3_600,
                             "cifar10_1_val": 1_000, "cifar10_1_test": 1_000}),
}


def synthetic_features(train: int, dim: int, classes: int, splits: dict[str, int], seed: int = 0) -> dict:
    """Class-clustered, non-negative features: every split drawn from one mixture, its labels uniform."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(64, dim, generator=g) / 8
    means = torch.randn(classes, 64, generator=g) * 0.3

    def draw(n):
        labels = torch.randint(classes, (n,), generator=g)
        latent = means[labels] + torch.randn(n, 64, generator=g)
        return {"x": torch.relu(latent @ basis + 0.5 * torch.randn(n, dim, generator=g)), "y": labels}

    return {"train": draw(train), **{split: draw(size) for split, size in splits.items()}}


def write_cifar_files(root: Path) -> None:
    """The smallest CIFAR-10, STL-10 and CIFAR-10.1 files the cifar10 benchmark reads (their official formats)."""
    import pickle

    rng, cifar = np.random.default_rng(0), root / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(cifar / name, "wb") as file:
            pickle.dump({"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), "labels": list(range(10))}, file)
    with open(cifar / "batches.meta", "wb") as file:
        pickle.dump({"label_names": classes}, file)
    stl = root / "stl10_binary"
    stl.mkdir()
    rng.integers(0, 256, (10, 3, 96, 96), dtype=np.uint8).tofile(stl / "test_X.bin")
    np.arange(1, 11, dtype=np.uint8).tofile(stl / "test_y.bin")
    (stl / "class_names.txt").write_text("airplane bird car cat deer dog horse monkey ship truck\n")
    (root / "cifar10.1").mkdir()
    np.save(root / "cifar10.1" / "cifar10.1_v6_data.npy", rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8))
    np.save(root / "cifar10.1" / "cifar10.1_v6_labels.npy", np.arange(10, dtype=np.int32))


def sklearn_loop(features: dict) -> tuple[float, float]:
    """(seconds, selected ID-val accuracy) of the paper's loop."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x, vx = features["train"]["x"], features["id_val"]["x"]
    mean, std = x.mean().item(), x.std().item()
    x, vx = ((x - mean) / std).numpy(), ((vx - mean) / std).numpy()
    y, vy = features["train"]["y"].numpy(), features["id_val"]["y"].numpy()
    start = time.perf_counter()
    model, accuracies = LogisticRegression(warm_start=True, max_iter=200), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in C_VALUES:
            model.C = c
            model.fit(x, y)
            accuracies.append(100.0 * (model.predict(vx) == vy).mean())
    return time.perf_counter() - start, max(accuracies)


def bare_path(features: dict, classes: int, device: str) -> tuple[float, float]:
    """(seconds, selected ID-val accuracy) of the project's solver alone, on ``device``."""
    from study.methods import best_fit, fit_path
    from study.methods.lp import to_l2
    from study.methods.metrics import score

    loaded = {split: (value["x"], value["y"]) for split, value in features.items()}
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    path = fit_path(loaded, to_l2("C", C_VALUES, loaded), classes, device=device)
    best = best_fit(loaded, path)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    x, y = loaded["id_val"]
    return seconds, score(best.head.logits(x.to(device)), y.to(device))["acc"]


def study_run(features: dict, benchmark: str, workdir: Path) -> tuple[float, float]:
    """(seconds, selected ID-val accuracy) of `study run` over the paper's grid, as a user runs it."""
    from study.data import create_benchmark
    from study.methods.features import prepare_features

    cache, data_root = workdir / "cache", workdir / "data"
    on_disk = ["--data-root", str(data_root)] if benchmark == "cifar10" else []
    if on_disk:
        write_cifar_files(data_root)
    data = create_benchmark(benchmark, cache_dir=cache, data_root=data_root if on_disk else None)
    file = prepare_features(data, "glyphnet", cache_dir=cache, progress=True)["file"]  # untimed: pretraining
    torch.save(features, file)
    grid = "[" + ", ".join(f"{c:.6g}" for c in C_VALUES) + "]"
    command = [sys.executable, "-m", "study.cli", "run", str(ROOT / "search_spaces" / "smoke.yaml"), "--name", "lp",
               "--results-dir", str(workdir / "results"), "--cache-dir", str(cache), "--json", "--no-progress",
               *on_disk, "--set", f"benchmark={benchmark}",
               "--set", f"methods={{lp: {{C: {grid}}}}}", "--set", f"resources.lp_cpus={os.cpu_count()}"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "RAY_ADDRESS": ""})
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    import pandas as pd

    table = pd.read_parquet(workdir / "results" / "lp" / "results.parquet")
    val = table[table["split"] == "id_val"].sort_values("C")
    assert len(val) == len(C_VALUES), "every value of C must have its own trial"
    json.loads(done.stdout)  # the report printed as one JSON object
    return seconds, val["accuracy"].max()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", choices=sorted(SHAPES), default="glyphs",
                        help="whose features they stand for: their classes and split sizes")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--bare", action="store_true", help="time the solver alone (no Ray), e.g. on a GPU")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    train, classes, splits = SHAPES[args.benchmark]
    features = synthetic_features(train, args.dim, classes, splits)
    sk_seconds, sk_acc = sklearn_loop(features)
    if args.bare:
        label = f"the project's solver alone ({args.device}, no Ray)"
        ours_seconds, ours_acc = bare_path(features, classes, args.device)
    else:
        label = "`study run`, LP trials of the 50 values (Ray, MLflow, report), end to end"
        with tempfile.TemporaryDirectory() as workdir:
            ours_seconds, ours_acc = study_run(features, args.benchmark, Path(workdir))
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}; {args.benchmark}'s "
          f"features {train} x {args.dim}, {classes} classes, {len(C_VALUES)} values of C\n")
    print("| LP over the paper's 50 C values | wall time | selected ID-val accuracy |\n|---|---|---|")
    print(f"| sklearn lbfgs, warm start, max_iter=200 (the paper's loop) | {sk_seconds:.1f} s | {sk_acc:.2f} |")
    print(f"| {label} | {ours_seconds:.1f} s | {ours_acc:.2f} |")
    print(f"\nspeed-up: {sk_seconds / ours_seconds:.1f}x; selected accuracy difference: {abs(sk_acc - ours_acc):.2f} pp")


if __name__ == "__main__":
    main()

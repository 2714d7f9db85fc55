"""The feature cache: every trial of a study reads the pretrained encoder's features (LP's inputs, LP-FT's LP stage,
FT's distortion reference), extracted once per (backbone, data set, transform).

    python benchmarks/feature_cache.py          # the quickstart's trials on the embedded benchmark

Times one extraction and one cache read (memory-mapped, every feature touched once) in a fresh cache folder, counts
the cache files the study's trials would use (one), and prints the time the cache saves against extracting in every
trial.
"""
from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import torch

from study.config import load_config
from study.data import create_benchmark
from study.data.protocol import inputs_for
from study.methods import cached_features, load_features
from study.models import create_backbone
from study.tune.spaces import trial_count

ROOT = Path(__file__).resolve().parents[1]


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def main() -> None:
    study = load_config(ROOT / "search_spaces" / "quickstart.yaml")
    trials = trial_count(study)
    with tempfile.TemporaryDirectory() as cache:
        data = create_benchmark(study.benchmark, cache_dir=cache)
        encoder = create_backbone(study.backbone, num_classes=data.num_classes, cache_dir=cache, progress=True)
        inputs = inputs_for(data.name, encoder, study.transforms)
        extract_s, file = timed(lambda: cached_features(encoder, data, inputs, cache_dir=cache))
        reads = [timed(lambda: {split: x.sum() for split, (x, _) in load_features(file).items()})[0]
                 for _ in range(5)]
        files = list((Path(cache) / "features").glob("*.pt"))
    read_s = sorted(reads)[len(reads) // 2]
    print(f"machine: {platform.node()}, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| | figure |\n|---|---|")
    print(f"| trials in {study.name} that read the features | {trials} |")
    print(f"| feature files in the cache after extraction | {len(files)} |")
    print(f"| one extraction (all splits) | {extract_s:.2f} s |")
    print(f"| one cache read (median of 5) | {read_s:.3f} s |")
    print(f"| extracting in every trial instead | {trials * extract_s:.1f} s |")
    print(f"| with the cache | {extract_s + trials * read_s:.1f} s |")
    print(f"| saved | {trials * extract_s - (extract_s + trials * read_s):.1f} s |")


if __name__ == "__main__":
    main()

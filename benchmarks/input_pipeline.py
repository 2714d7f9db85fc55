"""The input pipeline: images per second per CPU core at 224 px, from a JPEG tree in ImageNet's layout.

    python benchmarks/input_pipeline.py                     # 512 JPEGs of 500 x 375 (ImageNet's typical size)
    python benchmarks/input_pipeline.py --images 2048 --workers 8
    python benchmarks/input_pipeline.py --device cuda       # also nvJPEG: torchvision.io.decode_jpeg on the GPU

Writes the tree (``imagenet/train/<wnid>/*.JPEG``) into a temporary folder, lists it with the project's ImageNet
loader, and times whole passes of the project's ``Pipeline`` (decoding with torchvision, ``transforms.v2`` on uint8
tensors, the batch normalised on the device) with the train transform (RandomResizedCrop 224 + flip) and the eval
transform (resize 256, centre crop 224), in this process (0 workers: one core) and with DataLoader workers: reading,
decoding, transforming and batching, the work that feeds the device (on a CPU the batch is not normalised: a GPU
does that step, and on a CPU it is the training loop's). The
same files through PIL and torchvision's PIL transforms (the pipeline before this one) are timed beside it.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from study.data import Benchmark, Pipeline
from study.data.imagenet import class_folders
from study.data.transforms import TensorNormalize, eval_transform, train_transform

GPU_IMAGES_PER_SECOND = 2500  # a ResNet-50 training in bf16 on one A100/H100-class GPU (NVIDIA's, timm's figures)


def write_tree(root: Path, images: int, classes: int = 8) -> Path:
    """JPEGs of smooth random colour fields with fine noise (quality 90): JPEG-like content, not flat colour."""
    rng = np.random.default_rng(0)
    train = root / "imagenet" / "train"
    for i in range(images):
        folder = train / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        field = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((500, 375), Image.BICUBIC)
        noisy = np.asarray(field, dtype=np.int16) + rng.integers(-12, 13, (375, 500, 3))
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(folder / f"img_{i}.JPEG", quality=90)
    return train


def project_rate(train: Path, *, augment: bool, workers: int, batch_size: int, device: str) -> float:
    """Images per second of one pass of the project's pipeline (after a warm-up pass that starts the workers)."""
    classes = sorted(p.name for p in train.iterdir())
    files = class_folders(train, classes, "this benchmark")
    benchmark = Benchmark("jpegs", tuple(classes), (), {"train": files}, "jpegs")
    benchmark.set_transform(eval_transform(224, resize=256), train=train_transform(224))
    # On a GPU the batch is normalised there; on the CPU that step belongs to the training loop, not the feed.
    normalize = TensorNormalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if device != "cpu" else None
    data = Pipeline(benchmark, device=device, normalize=normalize, num_workers=workers)
    passes = (lambda: data.train(batch_size=batch_size, seed=1)) if augment else (
        lambda: data.split("train", batch_size=batch_size))
    for _ in passes():
        pass
    start, seen = time.perf_counter(), 0
    for images, _ in passes():
        seen += len(images)
    if device == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def pil_rate(train: Path, *, augment: bool) -> float:
    """Images per second of PIL decoding and torchvision's PIL transforms, in one process."""
    import torchvision.transforms as T

    transform = (T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.PILToTensor()]) if augment else
                 T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()]))
    paths = sorted(train.rglob("*.JPEG"))
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            transform(image.convert("RGB"))
    return len(paths) / (time.perf_counter() - start)


def nvjpeg_rate(train: Path, batch_size: int) -> float:
    """Images per second of batched nvJPEG decoding on the GPU, then the eval resize and crop there."""
    from torchvision.io import decode_jpeg, read_file
    from torchvision.transforms import v2

    paths, resize = sorted(train.rglob("*.JPEG")), v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224)])
    data = [read_file(str(path)) for path in paths]
    decode_jpeg(data[:batch_size], device="cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    for k in range(0, len(data), batch_size):
        [resize(image) for image in decode_jpeg(data[k:k + batch_size], device="cuda")]
    torch.cuda.synchronize()
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:
        train = write_tree(Path(root), args.images)
        rows = []
        for augment, name in ((True, "train (RandomResizedCrop 224 + flip)"), (False, "eval (resize 256, crop 224)")):
            pil = pil_rate(train, augment=augment)
            alone = project_rate(train, augment=augment, workers=0, batch_size=args.batch_size, device=args.device)
            pooled = project_rate(train, augment=augment, workers=args.workers, batch_size=args.batch_size,
                                  device=args.device)
            rows.append((name, pil, alone, pooled))
        gpu = nvjpeg_rate(train, args.batch_size) if args.device == "cuda" else None
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}; {args.images} JPEGs of "
          f"500 x 375, batch {args.batch_size}, device {args.device}\n")
    print(f"| transform | PIL, 1 process (img/s) | project, 0 workers = 1 core (img/s) | project, {args.workers} "
          f"workers (img/s) | cores for {GPU_IMAGES_PER_SECOND:,} img/s |\n|---|---|---|---|---|")
    for name, pil, alone, pooled in rows:
        print(f"| {name} | {pil:.0f} | {alone:.0f} | {pooled:.0f} | {GPU_IMAGES_PER_SECOND / alone:.1f} |")
    if gpu is not None:
        print(f"\nnvJPEG on the GPU, batched decode + resize/crop: {gpu:.0f} img/s")


if __name__ == "__main__":
    main()

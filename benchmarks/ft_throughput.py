"""FT throughput: images per second of the project's fine-tuning loop against timm's training benchmark.

    python benchmarks/ft_throughput.py                                  # on the GPU machine: ResNet-50, ViT-B/16
    python benchmarks/ft_throughput.py --models resnet18 --img-size 64 --batch-size 16 --steps 4 --device cpu

Both sides train the same timm model at the same batch size, resolution and precision (bf16 autocast,
channels-last, SGD with momentum), and are timed after warm-up steps:

- **timm**: the loop of timm's ``benchmark.py --bench train``: one random batch that stays on the device, then
  forward, loss, backward and optimizer step, synchronised at the end;
- **project**: ``study.methods.fine_tune``, unchanged, for one epoch over an in-memory uint8 benchmark of random
  images (so each step pays the project's real input path: shuffled indexing, the backbone's normalising transform,
  the copy to the device), with evaluation splits of one batch so the epoch is almost all training.

Goal: the project at >= 85% of timm's images per second.
"""
from __future__ import annotations

import argparse
import time

import timm
import torch
import torch.nn.functional as F

from study.data import Benchmark, Pipeline, TensorImages
from study.data.transforms import TensorNormalize
from study.methods import Scoring, fine_tune


def timm_images_per_second(model: torch.nn.Module, batch_size: int, img_size: int, steps: int, warmup: int,
                           device: str) -> float:
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    images = torch.randn(batch_size, 3, img_size, img_size, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (batch_size,), device=device)

    def step():
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def project_images_per_second(model: torch.nn.Module, batch_size: int, img_size: int, steps: int, warmup: int,
                              device: str) -> float:
    data = random_benchmark(batch_size * (steps + warmup), batch_size, img_size)
    config = model.pretrained_cfg  # uint8 batches go to the device, and are normalised there
    pipeline = Pipeline(data, device=device, normalize=TensorNormalize(config["mean"], config["std"]))
    results = fine_tune(model, pipeline, lr=1e-3, epochs=2, batch_size=batch_size, momentum=0.9, weight_decay=0.0,
                        precision="bf16", scoring=Scoring(batch_size=batch_size))
    next(results)  # epoch 0: evaluation only
    next(results)  # epoch 1: warm-up (cudnn autotuning, allocator)
    synchronize(device)
    start = time.perf_counter()
    next(results)
    synchronize(device)
    return len(data.splits["train"]) / (time.perf_counter() - start)


def random_benchmark(train_size: int, eval_size: int, img_size: int) -> Benchmark:
    def split(size: int) -> TensorImages:
        generator = torch.Generator().manual_seed(size)
        images = torch.randint(0, 256, (size, 3, img_size, img_size), dtype=torch.uint8, generator=generator)
        return TensorImages(images, torch.randint(0, 1000, (size,), generator=generator))

    return Benchmark(name="random", classes=tuple(str(i) for i in range(1000)), ood_domains=(),
                     splits={"train": split(train_size), "id_val": split(eval_size), "id_test": split(eval_size)},
                     fingerprint="random")


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet50,vit_base_patch16_224")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    print(f"device: {torch.cuda.get_device_name() if args.device == 'cuda' else args.device}, torch "
          f"{torch.__version__}, timm {timm.__version__}, batch {args.batch_size}, {args.img_size} px, bf16 autocast, "
          "channels-last\n")
    print("| model | timm train loop (img/s) | project FT loop (img/s) | project / timm |\n|---|---|---|---|")
    for name in args.models.split(","):
        kwargs = dict(num_classes=1000, img_size=args.img_size) if name.startswith("vit") else dict(num_classes=1000)
        reference = timm_images_per_second(timm.create_model(name, **kwargs), args.batch_size, args.img_size,
                                           args.steps, args.warmup, args.device)
        ours = project_images_per_second(timm.create_model(name, **kwargs), args.batch_size, args.img_size,
                                         args.steps, args.warmup, args.device)
        print(f"| {name} | {reference:.0f} | {ours:.0f} | {100 * ours / reference:.0f}% |")


if __name__ == "__main__":
    main()

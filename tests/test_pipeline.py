"""The input pipeline on real JPEG files: uint8 batches normalised on the device, the same batches with any number
of DataLoader workers (random augmentation included), and a damaged image named by its path."""
import pytest
import torch

from official_formats import write_images
from study.data import Benchmark, Pipeline, TensorImages
from study.data.files import DataError, ImageFiles
from study.data.transforms import TensorNormalize, eval_transform, train_transform

NORMALIZE = TensorNormalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))


def jpeg_benchmark(folder, count: int = 24) -> Benchmark:
    paths = write_images(folder, count)
    splits = {"train": ImageFiles(paths, [i % 3 for i in range(count)]),
              "id_val": ImageFiles(paths[:10], [i % 3 for i in range(10)])}
    benchmark = Benchmark("jpegs", ("a", "b", "c"), (), splits, "jpegs")
    benchmark.set_transform(eval_transform(12, resize=14), train=train_transform(12, scale=(0.3, 1.0)))
    return benchmark


def batches(benchmark, workers: int, seed: int):
    data = Pipeline(benchmark, normalize=NORMALIZE, num_workers=workers)
    return list(data.train(batch_size=5, seed=seed)), list(data.split("id_val", batch_size=4))


def test_random_augmentation_draws_the_same_batches_with_any_number_of_workers(tmp_path):
    benchmark = jpeg_benchmark(tmp_path)
    (train0, val0), (train2, val2) = batches(benchmark, 0, seed=3), batches(benchmark, 2, seed=3)
    assert len(train0) == 4 and [len(labels) for _, labels in train0] == [5] * 4, "the last partial batch dropped"
    for (a, la), (b, lb) in zip(train0 + val0, train2 + val2):
        assert torch.equal(a, b) and torch.equal(la, lb)
    other, _ = batches(benchmark, 0, seed=4)
    assert not torch.equal(train0[0][0], other[0][0]), "another epoch's seed draws other crops and flips"


def test_batches_arrive_normalised_and_channels_last(tmp_path):
    benchmark = jpeg_benchmark(tmp_path)
    images, labels = next(iter(Pipeline(benchmark, normalize=NORMALIZE).split("id_val", batch_size=4)))
    raw = torch.stack([benchmark.splits["id_val"][i][0] for i in range(4)])
    assert raw.dtype == torch.uint8 and raw.shape == (4, 3, 12, 12), "workers hand over bytes"
    assert images.dtype == torch.float32 and images.is_contiguous(memory_format=torch.channels_last)
    mean, std = torch.tensor(NORMALIZE.mean).view(1, 3, 1, 1), torch.tensor(NORMALIZE.std).view(1, 3, 1, 1)
    torch.testing.assert_close(images, (raw.float() / 255 - mean) / std)
    assert labels.tolist() == [0, 1, 2, 0]


def test_a_data_parallel_rank_gets_its_share_of_every_global_batch(tmp_path):
    benchmark = jpeg_benchmark(tmp_path)
    whole = list(Pipeline(benchmark, normalize=NORMALIZE).train(batch_size=6, seed=1))
    halves = [list(Pipeline(benchmark, normalize=NORMALIZE, shard=(rank, 2)).train(batch_size=3, seed=1))
              for rank in (0, 1)]
    for k, (images, labels) in enumerate(whole):
        together = torch.cat([halves[0][k][1], halves[1][k][1]])
        assert sorted(together.tolist()) == sorted(labels.tolist())
        assert torch.equal(images[0::2], halves[0][k][0]) and torch.equal(images[1::2], halves[1][k][0])


def test_in_memory_tensors_are_sliced_a_batch_at_a_time():
    images = torch.arange(10 * 3 * 2 * 2, dtype=torch.uint8).view(10, 3, 2, 2)
    benchmark = Benchmark("memory", ("a", "b"), (), {"train": TensorImages(images, torch.arange(10) % 2)}, "m")
    (first, labels), *_ = Pipeline(benchmark).split("train", batch_size=4)
    assert torch.equal(first, images[:4]) and labels.tolist() == [0, 1, 0, 1]


def test_a_damaged_image_is_named_by_its_path(tmp_path):
    benchmark = jpeg_benchmark(tmp_path)
    damaged = benchmark.splits["id_val"].paths[2]
    data = open(damaged, "rb").read()
    with open(damaged, "wb") as file:
        file.write(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"{damaged}: not a readable image"):
        list(Pipeline(benchmark, normalize=NORMALIZE, num_workers=1).split("id_val", batch_size=4))

"""Damaged files in the official formats, as a user meets them (a download cut short, a partial copy, garbage): each
is one line that names the file, says what is wrong, and where to get a fresh copy; at set-up, before any work."""
from pathlib import Path

import pytest

from helpers import ROOT
from official_formats import (breeds_world, write_breeds, write_cifar10, write_cifar101, write_fmow, write_images,
                              write_stl10)
from study.cli import main
from study.data import Benchmark, Pipeline, create_benchmark
from study.data.files import DataError, ImageFiles
from study.data.transforms import TensorNormalize


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def garble(path: Path) -> Path:
    path.write_bytes(b"\x00not what this file should hold\xff" * 8)
    return path


def cifar_world(root: Path) -> None:
    write_cifar10(root), write_stl10(root, [0, 1, 2, 3]), write_cifar101(root, 4)


def fmow_world(root: Path) -> None:
    write_fmow(root, [("train", c, "BRA", 2010) for c in ("airport", "zoo") * 2] +
               [("val", "zoo", "BRA", 2011), ("test", "airport", "BRA", 2012)] +
               [(s, "zoo", country, year) for country in ("KEN", "FRA") for s, year in (("val", 2014), ("test", 2016))])


def breeds_hierarchy(root: Path) -> None:
    write_breeds(root, *breeds_world(), images=(0, 0))  # the hierarchy is read before any image folder


CASES = {  # case: (benchmark, writer, file to damage, damage, what the line says is wrong)
    "truncated CIFAR-10 batch": ("cifar10", cifar_world, "cifar-10-batches-py/data_batch_3", truncate,
                                 "not a readable CIFAR-10 batch"),
    "garbage CIFAR-10 batch": ("cifar10", cifar_world, "cifar-10-batches-py/data_batch_1", garble,
                               "not a readable CIFAR-10 batch"),
    "truncated batches.meta": ("cifar10", cifar_world, "cifar-10-batches-py/batches.meta", truncate,
                               "not a readable CIFAR-10 class-name file"),
    "STL-10 labels shorter than its images": ("cifar10", cifar_world, "stl10_binary/test_y.bin", truncate,
                                              "labels (1 to 10) expected"),
    "truncated CIFAR-10.1 images": ("cifar10", cifar_world, "cifar10.1/cifar10.1_v6_data.npy", truncate,
                                    "not a readable CIFAR-10.1 images file"),
    "truncated BREEDS class info": ("living17", breeds_hierarchy, "breeds/dataset_class_info.json", truncate,
                                    "not a readable BREEDS class-info file"),
    "truncated BREEDS hierarchy (Living-17)": ("living17", breeds_hierarchy, "breeds/class_hierarchy.txt", truncate,
                                               "superclasses of 4 ImageNet classes at level 5, living17 has 17"),
    "truncated BREEDS hierarchy (Entity-30)": ("entity30", breeds_hierarchy, "breeds/class_hierarchy.txt",
                                               lambda path: truncate(path, 0.9),
                                               "superclasses of 8 ImageNet classes at level 4, entity30 has 30"),
    "FMoW region table cut in its header": ("fmow", fmow_world, "fmow_v1.1/country_code_mapping.csv",
                                            lambda path: truncate(path, 0.05), "lack ['alpha-3', 'region']"),
    "garbage FMoW metadata": ("fmow", fmow_world, "fmow_v1.1/rgb_metadata.csv", garble,
                              "not a readable FMoW metadata file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_file_is_one_line_naming_it_and_where_to_get_it(case, tmp_path):
    benchmark, write, name, damage, problem = CASES[case]
    write(tmp_path)
    path = damage(tmp_path / name)
    with pytest.raises(DataError) as error:
        create_benchmark(benchmark, data_root=tmp_path)
    line = str(error.value)
    assert "\n" not in line and line.startswith(f"{path}: ") and problem in line
    assert "get a fresh copy from" in line


def test_study_run_refuses_a_damaged_file_with_exit_2_and_writes_nothing(tmp_path, capsys):
    cifar_world(tmp_path / "data")
    meta = truncate(tmp_path / "data" / "cifar-10-batches-py" / "batches.meta")
    code = main(["run", str(ROOT / "search_spaces" / "paper" / "cifar10.yaml"), "--data-root", str(tmp_path / "data"),
                 "--results-dir", str(tmp_path / "results"), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {meta}: not a readable")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("workers", [0, 1])
def test_an_image_damaged_after_set_up_fails_its_pass_with_one_line(tmp_path, workers):
    paths = write_images(tmp_path / "images", 6)
    benchmark = Benchmark("files", ("a", "b"), (), {"train": ImageFiles(paths, [0, 1] * 3)}, "files")
    truncate(paths[4])
    data = Pipeline(benchmark, normalize=TensorNormalize((0.5,) * 3, (0.25,) * 3), num_workers=workers)
    with pytest.raises(DataError) as error:
        list(data.train(batch_size=2, seed=0))
    line = str(error.value)
    assert "\n" not in line and line.startswith(f"{paths[4]}: not a readable image") and "fresh copy" in line

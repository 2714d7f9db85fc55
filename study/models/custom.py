"""Your own model: any timm architecture, or any local ``transformers`` folder, named in the study's YAML.

    backbone: timm/resnet18                      # any timm architecture; its weights from a file:
    backbone_weights: /models/resnet18.pth       #   (or --weights) a state dict, or a timm / torchvision checkpoint
    backbone: timm/convnext_tiny.fb_in22k        # or, where this machine reaches the Hugging Face Hub, a pretrained tag
    backbone: {transformers: /models/my-bert}    # a local from_pretrained folder (BERT, RoBERTa, MPNet,
                                                 #   sentence-transformers ...), a text backbone

**timm.** The architecture is ``timm.create_model(name)``; a weights file is read with ``torch.load(weights_only=True)``
(a plain state dict, or a checkpoint holding one under ``state_dict``, ``model`` or ``state_dict_ema``, DDP's
``module.`` prefixes removed), every tensor checked against the architecture (the first mismatching key and both
shapes, in one line, before any work), the classifier left out (a new head replaces it). The eval transform is
timm's from the architecture's pretrained config (input size, crop, interpolation) and so is the normalisation
(mean, std), as ``timm.data.resolve_data_config`` gives them.

**transformers.** The folder is read with ``local_files_only`` (no hub), its tokenizer beside it, its dropout off.
Its sentence feature is what the folder says it was trained with: a sentence-transformers folder's
``1_Pooling/config.json`` (mean of the token states, or the first token's); otherwise the first token's state,
[CLS] or ``<s>``, which BERT's and RoBERTa's own classification heads read (Tomihari & Sato's feature).
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path

import timm
import torch

from study.cache import content_hash
from study.data.transforms import TensorNormalize, eval_transform
from study.models.backbone import Backbone, WeightsError, require_file, weights_fingerprint

TIMM, TRANSFORMERS = "timm/", "transformers:"
CHECKPOINT_KEYS = ("state_dict", "model", "state_dict_ema")
TEXT_MAX_TOKENS = 128  # a folder's sentences: longer ones are truncated


def is_custom(name: str) -> bool:
    return name.startswith((TIMM, TRANSFORMERS))


def reads_text(name: str) -> bool:
    return name.startswith(TRANSFORMERS)


def parse_backbone(value, problems: list[str]) -> str | None:
    """A config's ``backbone`` that names a model of the user's (``timm/ARCH[.TAG]``, ``{timm: ARCH}``,
    ``{transformers: FOLDER}``) as its one string form; None (and nothing appended) where it names none."""
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("timm", "transformers") or not isinstance(
                next(iter(value.values())), str):
            problems.append(f"backbone: expected a registered name, timm/ARCH, {{timm: ARCH}} or {{transformers: "
                            f"FOLDER}}, got {value!r}")
            return "invalid"
        kind, target = next(iter(value.items()))
        value = f"{TIMM}{target}" if kind == "timm" else f"{TRANSFORMERS}{target}"
    if not isinstance(value, str) or not is_custom(value):
        return None
    if value.startswith(TIMM):
        architecture, _, tag = value[len(TIMM):].partition(".")
        if not timm.is_model(architecture):
            close = difflib.get_close_matches(architecture, timm.list_models(), n=3)
            problems.append(f"backbone: timm has no architecture {architecture!r}" +
                            (f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"))
        elif tag and value[len(TIMM):] not in timm.list_pretrained(f"{architecture}.*"):
            problems.append(f"backbone: timm has no pretrained tag {tag!r} for {architecture}; its tags: "
                            f"{', '.join(timm.list_pretrained(f'{architecture}.*')[:6]) or 'none'}")
    elif not value[len(TRANSFORMERS):]:
        problems.append("backbone: {transformers: FOLDER} needs the folder of a from_pretrained model")
    return value


def folder_of(name: str) -> Path:
    return Path(name[len(TRANSFORMERS):]).expanduser().resolve()


def absolute(name: str) -> str:
    """``name`` with a transformers folder made absolute (trials run in other folders, and on other nodes)."""
    return f"{TRANSFORMERS}{folder_of(name)}" if reads_text(name) else name


def check(name: str, weights=None) -> None:
    """Before any work: a timm architecture's weights file against it; a transformers folder's model and
    tokenizer files, and the text extra."""
    if reads_text(name):
        from study.models.text import check_vocabulary, require_text_extra

        folder = folder_of(name)
        require_text_extra(name)
        if not (folder / "config.json").is_file():
            raise WeightsError(f"{folder}: no config.json, so not a transformers model folder; save one with "
                               "model.save_pretrained(FOLDER) and tokenizer.save_pretrained(FOLDER)")
        if not any((folder / file).is_file() for file in ("tokenizer.json", "vocab.txt", "vocab.json",
                                                          "tokenizer_config.json")):
            raise WeightsError(f"{folder}: no tokenizer files; save the tokenizer beside the model "
                               "(tokenizer.save_pretrained(FOLDER))")
        check_vocabulary(folder)
    elif weights is not None:
        timm_weights(name, weights, meta=True)


def timm_weights(name: str, weights, *, meta: bool = False) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """timm's architecture of ``name`` (on the meta device: shapes only) and the checkpoint's tensors for it, every
    one checked; the classifier's are left out."""
    architecture = name[len(TIMM):].partition(".")[0]
    path = require_file(weights, f"a {architecture} checkpoint", "your own training run, or timm's hub")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch raises several types for a file that is not a checkpoint
        raise WeightsError(f"{path}: not a readable checkpoint ({type(error).__name__}: "
                           f"{str(error).splitlines()[0][:120] if str(error) else ''}); pass a state dict saved "
                           "with torch.save") from None
    state = next((checkpoint[key] for key in CHECKPOINT_KEYS if isinstance(checkpoint, dict) and key in checkpoint),
                 checkpoint)
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    with torch.device("meta") if meta else torch.device("cpu"):
        model = timm.create_model(architecture, pretrained=False)
    classifier = model.pretrained_cfg.get("classifier", "fc")
    classifiers = classifier if isinstance(classifier, (list, tuple)) else (classifier,)
    expected = {key: value for key, value in model.state_dict().items()
                if not key.startswith(tuple(f"{c}." for c in classifiers)) and not key.endswith("num_batches_tracked")}
    for key, tensor in expected.items():
        if key not in state:
            raise WeightsError(f"{path}: no tensor {key} ({tuple(tensor.shape)}) of timm's {architecture}; it holds "
                               f"{len(state)} tensors, e.g. {next(iter(state), 'none')}: not a {architecture} "
                               "checkpoint")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise WeightsError(f"{path}: tensor {key} has shape {tuple(state[key].shape)} but timm's {architecture} "
                               f"has {tuple(tensor.shape)}: not a {architecture} checkpoint")
    unknown = sorted(set(state) - set(model.state_dict()))
    if unknown:
        raise WeightsError(f"{path}: tensor {unknown[0]} has no place in timm's {architecture} ({len(unknown)} such); "
                           f"not a {architecture} checkpoint")
    return model, {key: state[key] for key in expected}


def create(*, name: str, num_classes: int, weights=None, cache_dir=None, progress: bool = False) -> Backbone:
    """The backbone a study names by ``timm/...`` or ``{transformers: ...}``, with a fresh ``num_classes``-way
    head."""
    if reads_text(name):
        return _transformers_backbone(name, num_classes)
    return _timm_backbone(name, num_classes, weights)


def _timm_backbone(name: str, num_classes: int, weights) -> Backbone:
    model_name = name[len(TIMM):]
    if weights is None:
        try:
            model = timm.create_model(model_name, pretrained=True, num_classes=num_classes)
        except Exception as error:  # the hub unreachable, a tag without weights ...
            raise WeightsError(f"the Hugging Face Hub (timm/{model_name}): could not load its weights "
                               f"({type(error).__name__}); pass --weights PATH to a local checkpoint") from None
    else:
        model, state = timm_weights(name, weights)
        model.load_state_dict(state, strict=False)  # the classifier, left out, is replaced next
        model.reset_classifier(num_classes)
    config = timm.data.resolve_data_config({}, model=model)
    transform = eval_transform(config["input_size"][-1], crop_pct=config["crop_pct"],
                               interpolation=config["interpolation"])
    fingerprint = weights_fingerprint(model_name, weights)
    return Backbone(name.replace("/", "-"), model, transform, TensorNormalize(config["mean"], config["std"]),
                    fingerprint)


def pooling_of(folder: Path) -> str:
    """How the model in ``folder`` makes its sentence feature: a sentence-transformers pooling config's mode (mean
    or the first token), else the first token ([CLS], <s>)."""
    modules = folder / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith("Pooling"):
                config = json.loads((folder / module["path"] / "config.json").read_text())
                if config.get("pooling_mode_mean_tokens"):
                    return "mean"
                if config.get("pooling_mode_cls_token"):
                    return "cls"
                raise WeightsError(f"{folder / module['path']}: a pooling this study does not implement "
                                   f"({', '.join(k for k, v in config.items() if v is True)}); mean and cls are")
    return "cls"


def _transformers_backbone(name: str, num_classes: int) -> Backbone:
    from study.models.text import require_text_extra, text_backbone

    require_text_extra(name)
    folder = folder_of(name)
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()]
    return text_backbone(f"transformers-{folder.name}", folder, num_classes=num_classes, pooling=pooling_of(folder),
                         fingerprint=content_hash("transformers", str(folder), stamp), max_length=TEXT_MAX_TOKENS)

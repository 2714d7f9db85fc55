"""The study's typed configuration: every knob, its default and its check, in one place.

A study is a YAML file (see ``search_spaces/``). ``load_config`` reads it, applies ``--set key=value`` overrides,
and validates the whole thing before any work starts: every problem is collected, each as one line that names the
key and says what to put there, and they are raised together as a ``ConfigError``.

Each method's hyper-parameter takes one of these forms:
    lr: 0.01                         fixed
    lr: [0.003, 0.01, 0.03]          a grid (every value is run)
    lr: {loguniform: [1e-4, 1e-1]}   sampled (search.algorithm random or optuna)
    lr: {uniform: [0.5, 0.99]}       sampled
    lr: {choice: [16, 32, 64]}       sampled
"""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from study.data.custom import FilesSpec, parse_spec
from study.methods.catalog import METHODS as CATALOG

SEARCH_ALGORITHMS = ("grid", "random", "optuna")
SCHEDULERS = ("fifo", "asha")
DISTRIBUTIONS = ("loguniform", "uniform", "choice")
PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("epoch", "step")  # the cosine schedule stepped once per epoch (the official code's) or per batch
OPTIMIZERS = ("sgd", "adamw")  # the FT-like methods': SGD with momentum (Kumar et al.), AdamW (Tomihari & Sato)
TRANSFORMS = ("paper", "backbone")  # the paper's inputs for its benchmarks (study.data.protocol), or the backbone's

_POSITIVE = {"lr", "epochs", "batch_size", "l2", "C", "rank", "scale"}
# A study's name is a folder, a storage URI's path and an MLflow experiment: what all three take, bounded well below
# every limit (a path component's 255 bytes, MLflow's experiment names).
MAX_NAME = 100
NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}")
_NON_NEGATIVE = {"weight_decay", "sp_alpha", "sp_beta", "strength"}
_BELOW_ONE = {"momentum"}  # SGD's momentum: 0 <= momentum < 1


class ConfigError(ValueError):
    """A study configuration is invalid; each element of ``problems`` is one line naming a key and the fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def short(value) -> str:
    """A hyper-parameter value as names and tables write it: 0.001, 1e-05, 20."""
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Param:
    """One hyper-parameter's search space: ``fixed``, ``grid`` or a distribution."""

    kind: str
    values: tuple

    @property
    def is_sampled(self) -> bool:
        return self.kind in DISTRIBUTIONS

    def to_yaml(self):
        """As a study file writes it: a value, a list (a grid) or ``{distribution: [...]}``."""
        if self.kind == "fixed":
            return self.values[0]
        return list(self.values) if self.kind == "grid" else {self.kind: list(self.values)}


@dataclass(frozen=True)
class SearchConfig:
    algorithm: str = "grid"
    num_samples: int = 1
    scheduler: str = "fifo"
    grace_epochs: int = 2


@dataclass(frozen=True)
class SelectionConfig:
    """The selection rules' settings: the small-OOD-val rule reads ``small_ood_k`` labelled examples per class of
    each OOD val split, drawn by ``seed``."""

    small_ood_k: int = 16
    seed: int = 0


@dataclass(frozen=True)
class ResourcesConfig:
    """What each trial reserves on the Ray cluster.

    FT and LP-FT trials run ``workers_per_trial`` data-parallel workers (DDP inside a Ray Train ``TorchTrainer``
    when more than one, each trial in its own PACK placement group), each with ``cpus_per_worker`` and
    ``gpus_per_worker``. LP trials are one process on cached features: ``lp_cpus`` and ``lp_gpus`` (fractions let
    several share a GPU). ``loader_workers`` is each worker's number of DataLoader processes; -1: chosen by the
    data (all its CPUs but one for files and arrays, none for in-memory tensors). A study asking for more GPUs than
    the cluster has is refused before it starts, unless ``wait_for_gpus`` (an autoscaling cluster).
    """

    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    lp_cpus: float = 1.0
    lp_gpus: float = 0.0
    max_concurrent_trials: int = 0
    loader_workers: int = -1
    wait_for_gpus: bool = False  # an autoscaling cluster adds GPU nodes on demand: do not refuse a GPU-less one

    def of_trial(self, method: str) -> tuple[int, float, float]:
        """(workers, CPUs per worker, GPUs per worker) of one trial of ``method``."""
        if not CATALOG[method].trains_encoder:
            return 1, self.lp_cpus, self.lp_gpus
        return self.of_encoder_trials()

    def of_encoder_trials(self) -> tuple[int, float, float]:
        """(workers, CPUs per worker, GPUs per worker) of a trial of any method that trains the encoder."""
        return self.workers_per_trial, self.cpus_per_worker, self.gpus_per_worker


@dataclass(frozen=True)
class StudyConfig:
    name: str
    benchmark: str = "glyphs"  # a registered name; for the user's own data, its spec's name (``files``)
    backbone: str = "glyphnet"  # a registered name, timm/ARCH[.TAG], or transformers:FOLDER
    input_size: int | None = None  # the image side a benchmark that takes one (digits) is drawn at; None: its own
    seeds: tuple[int, ...] = (0,)
    methods: dict[str, dict[str, Param]] = field(default_factory=dict)
    lpft_head: tuple[str, tuple[float, ...]] = ("l2", ())  # ("l2" or "C", values) of LP-FT's (LP-LoRA's) LP stage
    # WiSE-FT's interpolations between the starting and the fine-tuned weights, scored after an FT-like trial's
    # last epoch.
    wise_alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    soups: bool = False  # after the sweep: each fine-tuning method's uniform and greedy soups (``study soup``)
    precision: str = "fp32"  # FT-like training: fp32, or bf16 autocast (for GPUs)
    schedule: str = "epoch"
    optimizer: str = "sgd"
    transforms: str = "paper"
    search: SearchConfig = SearchConfig()
    selection: SelectionConfig = SelectionConfig()
    resources: ResourcesConfig = ResourcesConfig()
    max_failures: int = 2
    results_dir: Path = Path("results")
    storage: str | None = None
    data_root: str | None = None
    backbone_weights: str | None = None
    cache_dir: Path | None = None
    tracking_uri: str | None = None
    system_metrics: bool = False  # MLflow's system metrics (CPU, memory, GPU) on the parent run and trial runs
    files: FilesSpec | None = None  # the user's own data (``benchmark: {images: ...}`` or ``{texts: ...}``)

    @property
    def study_dir(self) -> Path:
        """The driver's folder of this study: config, results table, report."""
        return self.results_dir / self.name

    @property
    def storage_root(self) -> str:
        """Where Ray keeps trial checkpoints: ``storage`` (a path or URI every node reaches), else the study dir."""
        return f"{self.storage.rstrip('/')}/{self.name}" if self.storage else str(self.study_dir)

    def to_dict(self) -> dict:
        """The resolved configuration, every default filled in, as a study file writes it: what ``config.yaml``
        keeps and the MLflow parent run logs, and what ``parse_config`` reads back into this same config."""
        out = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "methods":
                out["methods"] = {method: {key: param.to_yaml() for key, param in params.items()}
                                  for method, params in value.items()}
            elif item.name == "lpft_head":
                out.update({f"lpft_head_{value[0]}": list(value[1])} if value[1] else {})
            elif item.name == "files":
                if value is not None:
                    out["benchmark"] = value.to_yaml()
            else:
                out[item.name] = _plain(value)
        return out

    def searched(self, method: str) -> tuple[str, ...]:
        """The hyper-parameters of ``method`` the study varies (a grid of several values, or a distribution); if
        none, its first one (its learning rate or L2 strength), so a trial's name always says what it ran."""
        params = self.methods.get(method, {})
        varied = tuple(name for name, param in params.items() if param.is_sampled or len(param.values) > 1)
        return varied or tuple(params)[:1]

    @property
    def lp_grid(self) -> tuple[str, tuple[float, ...]]:
        """("l2" or "C", values) of LP's grid, which LP trials solve as one path; no values where LP is sampled."""
        params = self.methods.get("lp", {})
        for kind in ("C", "l2"):
            if kind in params and not params[kind].is_sampled:
                return kind, params[kind].values
        return "l2", ()


def _plain(value):
    """A config value as YAML-able plain data."""
    if isinstance(value, (SearchConfig, SelectionConfig, ResourcesConfig)):
        return {item.name: getattr(value, item.name) for item in fields(value)}
    if isinstance(value, tuple):
        return list(value)
    return str(value) if isinstance(value, Path) else value


def _default(config: type, name: str):
    """The default of field ``name`` of a config dataclass: the one place every default is written."""
    return next(item.default for item in fields(config) if item.name == name)


def load_config(path: str | os.PathLike, overrides: list[str] = (), **settings) -> StudyConfig:
    """Read a study YAML (and the ``base`` it extends), apply ``key.sub=value`` overrides and keyword settings,
    validate everything."""
    raw = read_study_file(Path(path))
    for override in overrides:
        _apply_override(raw, override)
    for key, value in settings.items():
        if value is not None:
            raw[key] = value
    return parse_config(raw)


def read_study_file(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A study file's mapping with the file it names as ``base`` under it: mappings merged key by key, anything
    else (a list is a grid) replaced; ``base`` is read relative to the file."""
    raw = _read_yaml(path)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError([f"{path}: base: expected the path of the study file it extends, got {base!r}"])
    parent = (path.parent / base).resolve()
    if parent in seen or parent == path.resolve():
        raise ConfigError([f"{path}: base: {base} extends itself (through {', '.join(p.name for p in seen)})"])
    return _merged(read_study_file(parent, (*seen, path.resolve())), raw)


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read_yaml(path: Path) -> dict:
    """The config file's top-level mapping, or one line saying what is wrong with the file."""
    if path.is_dir():
        raise ConfigError([f"{path}: is a folder, not a config file; pass a YAML file from search_spaces/, e.g. "
                           "search_spaces/quickstart.yaml"])
    if not path.is_file():
        raise ConfigError([f"{path}: no such config file; pass a YAML from search_spaces/, e.g. "
                           "search_spaces/quickstart.yaml"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not a text file (not UTF-8); pass a study YAML, e.g. "
                           "search_spaces/quickstart.yaml"]) from None
    except OSError as error:
        raise ConfigError([f"{path}: cannot be read ({error.strerror}); check its permissions"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}:{where} is not valid YAML ({getattr(error, 'problem', error)}); "
                           "fix the syntax there"]) from None
    if raw is None:
        raise ConfigError([f"{path}: the file is empty; start from a YAML in search_spaces/, e.g. "
                           "search_spaces/smoke.yaml"])
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of settings at the top level (name: ..., methods: ...), "
                           f"got {type(raw).__name__}"])
    return raw


def parse_config(raw: dict) -> StudyConfig:
    """Validate a plain mapping into a ``StudyConfig``; raise one ``ConfigError`` listing every problem. A key the
    mapping leaves out takes the default of its ``StudyConfig`` field."""
    problems: list[str] = []
    check = _Checker(problems)
    allowed = {item.name for item in fields(StudyConfig)} - {"lpft_head", "files"} | {"lpft_head_l2", "lpft_head_C"}
    check.unknown_keys(raw, allowed, "")
    default = partial(_default, StudyConfig)
    name = check.typed(raw, "name", str, None, required=True)
    if isinstance(name, str) and not NAME.fullmatch(name):
        problems.append(f"name: {name!r} is not a valid study name: it names a folder, a storage URI and an MLflow "
                        f"experiment; use at most {MAX_NAME} letters, digits, '.', '-' and '_', starting with a "
                        "letter or digit")
    benchmark, files = _parse_benchmark(raw, check)
    backbone = _parse_backbone(raw, check)
    input_size = check.typed(raw, "input_size", int, default("input_size"))
    if files is not None and input_size is not None:
        check.problems.append("input_size: your own data is read at the backbone's input size, or by its "
                              f"benchmark.{files.kind}.train_transform / test_transform; drop input_size")
    _check_input_size(benchmark, backbone, input_size, check)
    seeds = check.int_list(raw, "seeds", list(default("seeds")))
    if repeated := sorted({seed for seed in seeds if seeds.count(seed) > 1}):
        problems.append(f"seeds: {repeated[0]} appears {seeds.count(repeated[0])} times; each seed runs every "
                        "configuration once (a repeat would run its trials twice and count them twice in the spread)"
                        "; list each seed once")
    search = _parse_search(raw.get("search") or {}, check)
    selection = _parse_selection(raw.get("selection") or {}, check)
    methods = _parse_methods(raw.get("methods"), search, check)
    head_kind, head_values = _parse_head_strength(raw, methods, check)
    wise_alphas = _parse_wise_alphas(raw.get("wise_alphas", list(default("wise_alphas"))), check)
    choices = {key: check.choice(raw, key, default(key), options, "")
               for key, options in (("precision", PRECISIONS), ("schedule", SCHEDULES), ("optimizer", OPTIMIZERS),
                                    ("transforms", TRANSFORMS))}
    resources = _parse_resources(raw.get("resources") or {}, check)
    _check_batches_split(methods, resources.workers_per_trial, check)
    _check_grace(search, methods, check)
    if search.scheduler == "asha" and resources.workers_per_trial > 1 and any(
            CATALOG[method].trains_encoder for method in methods):
        problems.append("search.scheduler: asha stops trials early, and a stopped multi-worker trial leaves its Ray "
                        "Train placement group behind so later trials never start (ray-project/ray#54305, Ray "
                        "2.60); use scheduler: fifo, or resources.workers_per_trial: 1")
    max_failures = check.typed(raw, "max_failures", int, default("max_failures"))
    if max_failures < 0:
        problems.append("max_failures: must be 0 or more (retries of a failed trial from its last checkpoint)")
    texts = {key: check.typed(raw, key, str, default(key))
             for key in ("storage", "data_root", "backbone_weights", "cache_dir", "tracking_uri")}
    _check_pairing(benchmark, backbone, check, files)
    if texts["backbone_weights"] is not None and _known_backbone(backbone):
        _check_takes_weights(backbone, check)
    results_dir = Path(check.typed(raw, "results_dir", str, str(default("results_dir"))))
    system_metrics = check.typed(raw, "system_metrics", bool, default("system_metrics"))
    soups = check.typed(raw, "soups", bool, default("soups"))
    if problems:
        raise ConfigError(problems)
    return StudyConfig(name=name, benchmark=benchmark, backbone=backbone, input_size=input_size, seeds=tuple(seeds),
                       methods=methods,
                       lpft_head=(head_kind, head_values), wise_alphas=wise_alphas, **choices, search=search,
                       selection=selection,
                       resources=resources, max_failures=max_failures, results_dir=results_dir,
                       **{**texts, "cache_dir": Path(texts["cache_dir"]) if texts["cache_dir"] else None},
                       system_metrics=system_metrics, files=files, soups=soups)


def _parse_benchmark(raw: dict, check: "_Checker") -> tuple[str, FilesSpec | None]:
    """A registered benchmark's name, or the user's own data (``{images: ...}``, ``{texts: ...}``): its name and
    spec."""
    value = raw.get("benchmark")
    if isinstance(value, dict):
        spec = parse_spec(value, check.problems)
        if spec is not None and spec.name in _benchmark_names():
            check.problems.append(f"benchmark.{spec.kind}.name: {spec.name!r} is a registered benchmark's name; give "
                                  "your data another")
        return (spec.name, spec) if spec else ("invalid", None)
    return check.registered(raw, "benchmark", _default(StudyConfig, "benchmark"), _benchmark_names()), None


def _parse_backbone(raw: dict, check: "_Checker") -> str:
    """A registered backbone's name, or a model of the user's (``timm/ARCH``, ``{transformers: FOLDER}``)."""
    from study.models.custom import parse_backbone

    own = parse_backbone(raw.get("backbone"), check.problems)
    if own is not None:
        return own
    return check.registered(raw, "backbone", _default(StudyConfig, "backbone"), _backbone_names())


def _known_backbone(name: str) -> bool:
    from study.models.custom import is_custom

    return name in _backbone_names() or is_custom(name)


def _benchmark_names() -> list[str]:
    from study.data import list_benchmarks

    return list_benchmarks()


def _backbone_names() -> list[str]:
    from study.models import list_backbones

    return list_backbones()


def _check_pairing(benchmark: str, backbone: str, check: "_Checker", files: FilesSpec | None = None) -> None:
    """A text benchmark needs a backbone that reads text, and an image benchmark one that reads images."""
    from study.data.registry import holds_text as registered_text
    from study.models.registry import reads_text

    if (benchmark not in _benchmark_names() and files is None) or not _known_backbone(backbone):
        return
    def holds_text(name: str) -> bool:
        return files.kind == "texts" if files is not None else registered_text(name)

    if holds_text(benchmark) != reads_text(backbone):
        kinds = {True: "sentences", False: "images (or vectors)"}
        texts = [name for name in _benchmark_names() if registered_text(name)]
        readers = [name for name in _backbone_names() if reads_text(name)]
        check.problems.append(f"backbone: {backbone} reads {kinds[reads_text(backbone)]} but benchmark {benchmark} "
                              f"holds {kinds[holds_text(benchmark)]}; pair the text benchmarks ({', '.join(texts)}) "
                              f"with {', '.join(readers)} or {{transformers: FOLDER}}, and the other benchmarks with the other "
                              "backbones")


def _check_input_size(benchmark: str, backbone: str, size: int | None, check: "_Checker") -> None:
    """``input_size`` only for a benchmark that draws its images at a given size, and never below the smallest
    image the backbone takes (its total stride)."""
    import inspect

    from study.data.registry import BENCHMARKS, takes_input_size
    from study.models.registry import min_input_size

    if benchmark not in _benchmark_names() or not _known_backbone(backbone):
        return
    if not takes_input_size(benchmark):
        if size is not None:
            takers = [name for name in _benchmark_names() if takes_input_size(name)]
            check.problems.append(f"input_size: benchmark {benchmark} reads its images at their own size; drop "
                                  f"input_size (it applies to {', '.join(takers)})")
        return
    if size is None:
        size = inspect.signature(BENCHMARKS.get(benchmark)).parameters["input_size"].default
    if size < (smallest := min_input_size(backbone)):
        check.problems.append(f"input_size: {size} px is too small for {backbone}, whose last feature map is "
                              f"{smallest} times smaller than its input; use at least {smallest}")


def _check_takes_weights(backbone: str, check: "_Checker") -> None:
    from study.models.registry import list_backbones, takes_weights

    if not takes_weights(backbone):
        readers = ", ".join(name for name in list_backbones() if takes_weights(name))
        check.problems.append(f"backbone_weights: {backbone} reads no weights file (--weights); drop it, or choose a "
                              f"backbone that reads one: {readers}")


def did_you_mean(word, options) -> str:
    """ "; did you mean X?" for the option closest to a mistyped ``word``, or nothing."""
    close = difflib.get_close_matches(str(word), [str(option) for option in options], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class _Checker:
    """Small typed getters that record a problem instead of raising, so every problem is reported at once."""

    def __init__(self, problems: list[str]):
        self.problems = problems

    def unknown_keys(self, mapping: dict, allowed: set[str], prefix: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.problems.append(f"{prefix}{key}: unknown key{did_you_mean(key, allowed)}; expected one of "
                                     f"{', '.join(sorted(allowed))}")

    def typed(self, mapping: dict, key: str, kind: type, default, *, prefix: str = "", required: bool = False):
        if key not in mapping or mapping[key] is None:
            if required:
                self.problems.append(f"{prefix}{key}: missing; add `{key}: ...` to the config")
            return default
        value = mapping[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            self.problems.append(f"{prefix}{key}: expected {kind.__name__}, got {value!r}")
            return default
        return value

    def registered(self, mapping: dict, key: str, default: str, names: list[str]) -> str:
        value = self.typed(mapping, key, str, default)
        if value not in names:
            self.problems.append(f"{key}: unknown {key} {value!r}{did_you_mean(value, names)}; choose one of "
                                 f"{', '.join(names)}")
        return value

    def int_list(self, mapping: dict, key: str, default: list[int], *, prefix: str = "") -> list[int]:
        value = mapping.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            self.problems.append(f"{prefix}{key}: expected a list of integers, e.g. [0, 1, 2], got {value!r}")
            return default
        if not value:
            self.problems.append(f"{prefix}{key}: empty list; give at least one value")
        return value

    def choice(self, mapping: dict, key: str, default: str, options: tuple[str, ...], prefix: str) -> str:
        value = self.typed(mapping, key, str, default, prefix=prefix)
        if value not in options:
            self.problems.append(f"{prefix}{key}: {value!r} is not one of {', '.join(options)}")
        return value


def _parse_search(raw: Any, check: _Checker) -> SearchConfig:
    if not isinstance(raw, dict):
        check.problems.append(f"search: expected a mapping, got {raw!r}")
        return SearchConfig()
    check.unknown_keys(raw, {"algorithm", "num_samples", "scheduler", "grace_epochs"}, "search.")
    default = partial(_default, SearchConfig)
    search = SearchConfig(
        algorithm=check.choice(raw, "algorithm", default("algorithm"), SEARCH_ALGORITHMS, "search."),
        num_samples=check.typed(raw, "num_samples", int, default("num_samples"), prefix="search."),
        scheduler=check.choice(raw, "scheduler", default("scheduler"), SCHEDULERS, "search."),
        grace_epochs=check.typed(raw, "grace_epochs", int, default("grace_epochs"), prefix="search."),
    )
    if search.num_samples < 1:
        check.problems.append("search.num_samples: must be at least 1")
    return search


def _parse_selection(raw: Any, check: _Checker) -> SelectionConfig:
    if not isinstance(raw, dict):
        check.problems.append(f"selection: expected a mapping, e.g. {{small_ood_k: 16}}, got {raw!r}")
        return SelectionConfig()
    check.unknown_keys(raw, {f.name for f in fields(SelectionConfig)}, "selection.")
    values = {f.name: check.typed(raw, f.name, int, f.default, prefix="selection.") for f in fields(SelectionConfig)}
    if values["small_ood_k"] < 1:
        check.problems.append(f"selection.small_ood_k: must be at least 1 (labelled OOD examples per class), got "
                              f"{values['small_ood_k']}")
    return SelectionConfig(**values)


def _parse_resources(raw: Any, check: _Checker) -> ResourcesConfig:
    if not isinstance(raw, dict):
        check.problems.append(f"resources: expected a mapping, got {raw!r}")
        return ResourcesConfig()
    check.unknown_keys(raw, {f.name for f in fields(ResourcesConfig)}, "resources.")
    kinds = {"int": int, "float": float, "bool": bool}
    values = {f.name: check.typed(raw, f.name, kinds[f.type], f.default, prefix="resources.")
              for f in fields(ResourcesConfig)}
    resources = ResourcesConfig(**values)
    if resources.workers_per_trial < 1:
        check.problems.append("resources.workers_per_trial: must be at least 1")
    for key in ("cpus_per_worker", "lp_cpus"):
        if not 0 < values[key] < math.inf:
            check.problems.append(f"resources.{key}: must be a positive number, e.g. 1, got {values[key]!r}")
    for key in ("gpus_per_worker", "lp_gpus"):
        if not 0 <= values[key] < math.inf:
            check.problems.append(f"resources.{key}: must be 0 or more, got {values[key]!r}")
    if resources.max_concurrent_trials < 0:
        check.problems.append(f"resources.max_concurrent_trials: must be 0 (as many as the cluster holds) or more, "
                              f"got {resources.max_concurrent_trials}")
    if resources.workers_per_trial > 1 and resources.gpus_per_worker % 1:
        check.problems.append(f"resources.gpus_per_worker: {resources.gpus_per_worker} is a fraction, but DDP "
                              "workers need whole GPUs (two ranks on one GPU fail in NCCL); use 1, or "
                              "workers_per_trial: 1 to share GPUs between trials")
    if resources.loader_workers < -1:
        check.problems.append("resources.loader_workers: must be -1 (chosen by the data) or 0 or more")
    if resources.lp_gpus > 1:
        check.problems.append("resources.lp_gpus: an LP trial is one process; use at most 1 (fractions share a GPU)")
    return resources


def _check_batches_split(methods: dict[str, dict[str, Param]], workers: int, check: _Checker) -> None:
    for method, params in methods.items():
        param = params.get("batch_size")
        if param is None or param.is_sampled and param.kind != "choice":
            continue
        for size in param.values:
            if isinstance(size, int) and workers >= 1 and size % workers:
                check.problems.append(f"methods.{method}.batch_size: {size} does not split over "
                                      f"resources.workers_per_trial={workers}; use a multiple of {workers}")


def _check_grace(search: SearchConfig, methods: dict[str, dict[str, Param]], check: _Checker) -> None:
    """ASHA's first rung must lie within the trials' epochs."""
    if search.scheduler != "asha":
        return
    epochs = [v for params in methods.values() if "epochs" in params for v in params["epochs"].values
              if isinstance(v, int)]
    if search.grace_epochs < 1:
        check.problems.append(f"search.grace_epochs: must be at least 1 (the epochs every trial runs before ASHA "
                              f"may stop it), got {search.grace_epochs}")
    elif epochs and search.grace_epochs > max(epochs):
        check.problems.append(f"search.grace_epochs: {search.grace_epochs} is more than the longest trial's "
                              f"{max(epochs)} epochs; use at most {max(epochs)}, or scheduler: fifo")


def _parse_methods(raw: Any, search: SearchConfig, check: _Checker) -> dict[str, dict[str, Param]]:
    if not isinstance(raw, dict) or not raw:
        check.problems.append(f"methods: expected a mapping of one or more of {', '.join(CATALOG)}, "
                              f"e.g. `methods: {{ft: {{lr: [0.01]}}}}`")
        return {}
    methods = {}
    for method, params in raw.items():
        if method not in CATALOG:
            check.problems.append(f"methods.{method}: unknown method{did_you_mean(method, CATALOG)}; choose from "
                                  f"{', '.join(CATALOG)}")
            continue
        params = params or {}
        if not isinstance(params, dict):
            check.problems.append(f"methods.{method}: expected a mapping of hyper-parameters, got {params!r}")
            continue
        known = CATALOG[method].params
        check.unknown_keys(params, set(known), f"methods.{method}.")
        if "C" in params and "l2" in params:
            check.problems.append(f"methods.{method}: give l2 or C, not both (l2 = 1/(C n_train))")
        methods[method] = {
            key: _parse_param(params.get(key, default), kind, f"methods.{method}.{key}", search, check)
            for key, (kind, default) in known.items()
            if key in params or default is not None and not (key == "l2" and "C" in params)
        }
    return methods


def _parse_param(value: Any, kind: type, where: str, search: SearchConfig, check: _Checker) -> Param:
    if isinstance(value, dict) and set(value) == {"logspace"}:
        value = _logspace(value["logspace"], where, check)
    if isinstance(value, dict):
        param = _parse_distribution(value, kind, where, check)
        if param.is_sampled and search.algorithm == "grid":
            check.problems.append(f"{where}: a {param.kind} distribution needs search.algorithm random or optuna; "
                                  "use a list for a grid")
        return param
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        check.problems.append(f"{where}: empty grid; give at least one value")
        return Param("grid", ())
    values = [_coerce(v, kind, where, check) for v in values]
    return Param("grid" if isinstance(value, list) else "fixed", tuple(values))


def _logspace(bounds: Any, where: str, check: _Checker) -> list[float]:
    """``{logspace: [start, stop, count]}``: ``count`` values from 10^start to 10^stop, evenly spaced in log (as
    numpy's logspace; the paper's 50 C values are ``{logspace: [-7, 2, 50]}``), each to 4 significant digits."""
    if (not isinstance(bounds, list) or len(bounds) != 3 or not all(isinstance(b, (int, float)) for b in bounds)
            or isinstance(bounds[2], bool) or not isinstance(bounds[2], int) or bounds[2] < 1):
        check.problems.append(f"{where}.logspace: expected [start exponent, stop exponent, count], e.g. [-7, 2, 50], "
                              f"got {bounds!r}")
        return [1.0]
    start, stop, count = bounds
    exponents = [start + (stop - start) * i / (count - 1) for i in range(count)] if count > 1 else [start]
    return [float(f"{10 ** e:.4g}") for e in exponents]


def _parse_distribution(value: dict, kind: type, where: str, check: _Checker) -> Param:
    if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        check.problems.append(f"{where}: expected one of {{{': [...], '.join(DISTRIBUTIONS)}: [...]}}, got {value!r}")
        return Param("fixed", ())
    dist, bounds = next(iter(value.items()))
    if not isinstance(bounds, list) or not bounds:
        check.problems.append(f"{where}.{dist}: expected a non-empty list, got {bounds!r}")
        return Param(dist, ())
    if dist == "choice":
        return Param(dist, tuple(_coerce(v, kind, where, check) for v in bounds))
    if kind is not float or len(bounds) != 2:
        check.problems.append(f"{where}.{dist}: expected [low, high] for a float hyper-parameter, got {bounds!r}")
        return Param(dist, ())
    low, high = (_coerce(v, float, where, check) for v in bounds)
    if not low < high or (dist == "loguniform" and low <= 0):
        check.problems.append(f"{where}.{dist}: need 0 < low < high for loguniform (low < high for uniform), "
                              f"got {bounds!r}")
    return Param(dist, (low, high))


def _coerce(value: Any, kind: type, where: str, check: _Checker):
    if isinstance(kind, tuple):  # one of a few names (a catalog ``Choice``)
        if value not in kind:
            check.problems.append(f"{where}: {value!r} is not one of {', '.join(kind)}")
        return value
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
    elif kind is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if not isinstance(value, kind) or isinstance(value, bool):
        check.problems.append(f"{where}: expected {kind.__name__} values, got {value!r}")
        return value
    name = where.rsplit(".", 1)[-1]
    if not math.isfinite(value):
        check.problems.append(f"{where}: must be a finite number, got {value!r}")
    elif name in _POSITIVE and value <= 0:
        check.problems.append(f"{where}: must be positive, got {value!r}")
    elif name in _NON_NEGATIVE and value < 0:
        check.problems.append(f"{where}: must be 0 or more, got {value!r}")
    elif name in _BELOW_ONE and not 0 <= value < 1:
        check.problems.append(f"{where}: must be at least 0 and below 1, e.g. 0.9, got {value!r}")
    return value


def _parse_head_strength(raw: dict, methods: dict[str, dict[str, Param]], check: _Checker) -> tuple[str, tuple]:
    """The LP stage of LP-FT (and LP-LoRA) sweeps ``lpft_head_l2`` or ``lpft_head_C`` values; by default the LP
    grid's."""
    if not any(CATALOG[method].lp_first for method in methods):
        return "l2", ()
    given = [key for key in ("l2", "C") if raw.get(f"lpft_head_{key}") is not None]
    if len(given) == 2:
        check.problems.append("lpft_head_C: give lpft_head_l2 or lpft_head_C, not both")
    if not given:
        lp = methods.get("lp", {})
        key = "C" if "C" in lp else "l2"
        if key not in lp or lp[key].is_sampled:
            check.problems.append("lpft_head_l2: LP-FT needs the L2 values of its LP stage; add "
                                  "`lpft_head_l2: [1e-4, 1e-3, 1e-2]` or an LP grid under methods.lp.l2")
            return "l2", ()
        return key, lp[key].values
    key = given[0]
    value = raw[f"lpft_head_{key}"]
    if isinstance(value, dict) and set(value) == {"logspace"}:
        value = _logspace(value["logspace"], f"lpft_head_{key}", check)
    values = value if isinstance(value, list) else [value]
    if not values:
        check.problems.append(f"lpft_head_{key}: empty list; give at least one value")
    return key, tuple(_coerce(v, float, f"lpft_head_{key}", check) for v in values)


def _parse_wise_alphas(value: Any, check: _Checker) -> tuple[float, ...]:
    """WiSE-FT's alphas: numbers in [0, 1]; an empty list turns WiSE-FT off."""
    values = value if isinstance(value, list) else [value]
    alphas = tuple(_coerce(v, float, "wise_alphas", check) for v in values)
    if not all(isinstance(a, float) and 0.0 <= a <= 1.0 for a in alphas):
        check.problems.append(f"wise_alphas: expected numbers from 0 (the starting model) to 1 (the fine-tuned one), "
                              f"e.g. [0, 0.5, 1], or [] for none; got {value!r}")
    return alphas


def _apply_override(raw: dict, override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError([f"--set {override!r}: expected key=value, e.g. --set seeds=[0,1]"])
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError([f"--set {override!r}: the value is not valid YAML"]) from None
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError([f"--set {override!r}: {part} is not a mapping in the config"])
    node[leaf] = value

"""From a study's typed search space to what Ray Tune searches.

A trial's hyper-parameters are flat: ``{"method": "ft", "ft.lr": 0.01, "ft.epochs": 8, ..., "seed": 0}``. Keys are
prefixed by the method so Optuna never mixes two methods' distributions under one name.

- ``grid``: every combination of every method's grid values, times every seed, as one ``grid_search`` over these
  flat dicts (under the config key ``trial``).
- ``random`` / ``optuna``: Optuna (random or TPE sampler) proposes ``search.num_samples`` configurations from a
  conditional space (method first, then that method's hyper-parameters); Ray's ``Repeater`` runs each proposal
  once per seed and reports the mean over seeds back to the sampler.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from study.config import Param, StudyConfig

# What ASHA and Optuna rank trials by: the best ``search_score`` on ID val so far (accuracy; minus the squared error).
SEARCH_METRIC, SEARCH_MODE = "best_id_val_score", "max"


def grid_points(study: StudyConfig) -> list[dict]:
    """Every (method, hyper-parameters, seed) combination of a grid study, as flat trial configs."""
    points = []
    for method, params in study.methods.items():
        names = list(params)
        for values in itertools.product(*(params[name].values for name in names)):
            hparams = {f"{method}.{name}": value for name, value in zip(names, values)}
            points += [{"method": method, **hparams, "seed": seed} for seed in study.seeds]
    return points


@dataclass(frozen=True)
class TrialSpec:
    """What one trial runs: a method, its hyper-parameters (unprefixed) and a seed."""

    method: str
    hparams: dict
    seed: int

    @classmethod
    def of(cls, config: dict, seeds: tuple[int, ...]) -> "TrialSpec":
        """Read a Ray trial config: a grid point under ``trial``, or an Optuna proposal plus a repeat index."""
        from ray.tune.search.repeater import TRIAL_INDEX

        flat = config.get("trial", config)
        method, prefix = flat["method"], flat["method"] + "."
        hparams = {key[len(prefix):]: value for key, value in flat.items() if key.startswith(prefix)}
        seed = flat["seed"] if "seed" in flat else seeds[config[TRIAL_INDEX]]
        return cls(method, hparams, seed)


class OptunaSpace:
    """A define-by-run Optuna space: pick a method, then sample only that method's hyper-parameters. A class, not a
    closure: Tune pickles the searcher, and this space with it, into every experiment checkpoint."""

    def __init__(self, study: StudyConfig):
        self.methods = study.methods

    def __call__(self, trial) -> dict:
        method = trial.suggest_categorical("method", list(self.methods))
        constants = {}
        for name, param in self.methods[method].items():
            key = f"{method}.{name}"
            if param.kind == "fixed":
                constants[key] = param.values[0]
            else:
                _suggest(trial, key, param)
        return constants


def _suggest(trial, key: str, param: Param):
    if param.kind in ("grid", "choice"):
        return trial.suggest_categorical(key, list(param.values))
    low, high = param.values
    return trial.suggest_float(key, low, high, log=param.kind == "loguniform")


def build_search(study: StudyConfig):
    """(param_space, search_alg, num_samples) for ``ray.tune.TuneConfig``."""
    from ray import tune
    from ray.tune.search import Repeater

    if study.search.algorithm == "grid":
        return {"trial": tune.grid_search(grid_points(study))}, None, 1

    import optuna
    from ray.tune.search.optuna import OptunaSearch

    sampler = (optuna.samplers.RandomSampler(seed=0) if study.search.algorithm == "random"
               else optuna.samplers.TPESampler(seed=0))
    searcher = OptunaSearch(space=OptunaSpace(study), metric=SEARCH_METRIC, mode=SEARCH_MODE, sampler=sampler)
    repeats = len(study.seeds)
    return {}, Repeater(searcher, repeat=repeats, set_index=True), study.search.num_samples * repeats


def trial_count(study: StudyConfig) -> int:
    """How many trials the study will run."""
    if study.search.algorithm == "grid":
        return len(grid_points(study))
    return study.search.num_samples * len(study.seeds)

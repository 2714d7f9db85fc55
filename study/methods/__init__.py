"""The three ways to transfer a pretrained model, as plain PyTorch generators of per-epoch results.

They know nothing of Ray or MLflow: ``study.tune`` wraps them.
"""
from study.methods.evaluation import Diverged, EpochResult, evaluate
from study.methods.features import cached_features, extract
from study.methods.ft import fine_tune
from study.methods.lp import LinearHead, best_head, fit_logistic_regression, linear_probe, lp_sweep
from study.methods.lpft import lp_ft

__all__ = ["Diverged", "EpochResult", "evaluate", "cached_features", "extract", "fine_tune", "LinearHead",
           "best_head", "fit_logistic_regression", "linear_probe", "lp_sweep", "lp_ft"]

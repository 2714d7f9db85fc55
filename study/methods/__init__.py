"""The ways to transfer a pretrained model, as plain PyTorch generators of per-epoch results.

LP, FT and LP-FT, with LoRA and LP-LoRA as FT variants and WiSE-FT's weight interpolation. They know nothing of
Ray or MLflow: ``study.tune`` wraps them.
"""
from study.methods.evaluation import Diverged, EpochResult, Scoring, evaluate
from study.methods.features import cached_features, extract, load_features
from study.methods.ft import fine_tune
from study.methods.lp import LinearHead, ProbeFit, best_fit, cached_path, fit_path, linear_probe
from study.methods.lora import add_lora, lora_ft
from study.methods.lpft import install_lp_head, lp_ft
from study.methods.wise import wise_curve

__all__ = ["Diverged", "EpochResult", "Scoring", "evaluate", "cached_features", "extract", "load_features", "fine_tune",
           "LinearHead", "ProbeFit", "best_fit", "cached_path", "fit_path", "linear_probe", "lp_ft",
           "install_lp_head", "add_lora", "lora_ft", "wise_curve"]

"""Benchmarks: a registry of named transfer tasks, each with ID and OOD splits, and the pipeline that batches them."""
from study.data import (breeds, cifar, digits, domainnet, embedded, fmow, imagenet,  # noqa: F401  (register them)
                        sentiment, sentiment_domains, toy)
from study.data.benchmark import GENERATED, ID_TEST, ID_VAL, TRAIN, Benchmark, Sentences, TensorImages
from study.data.pipeline import Pipeline
from study.data.registry import create_benchmark, list_benchmarks, register_benchmark

__all__ = ["Benchmark", "Sentences", "TensorImages", "Pipeline", "create_benchmark", "list_benchmarks", "register_benchmark",
           "TRAIN", "ID_VAL", "ID_TEST", "GENERATED"]

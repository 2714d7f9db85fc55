"""Benchmarks: a registry of named transfer tasks, each with ID and OOD splits."""
from study.data import breeds, cifar, domainnet, embedded, fmow, imagenet, toy  # noqa: F401  (register the benchmarks)
from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark, TensorImages, loader
from study.data.registry import create_benchmark, list_benchmarks, register_benchmark

__all__ = ["Benchmark", "TensorImages", "loader", "create_benchmark", "list_benchmarks", "register_benchmark",
           "TRAIN", "ID_VAL", "ID_TEST"]

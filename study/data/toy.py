"""The theory's toy (Kumar et al. 2022, section 3): a two-layer linear network f(x) = V B x under subspace shift.

The world: inputs in R^d; a true feature extractor B* (k x d) and head V* (C x k), the label being the argmax of
V* B* x. ID inputs lie in a random m-dimensional subspace S; OOD inputs mostly lie outside it. The pretrained
extractor B0 = B* + noise is "good" (see ``study.models.toy``). Gradients of any loss with respect to B are
V^T g x^T with x in S, so fine-tuning changes B only along S, while the head adapts to the changed features: OOD
inputs then meet an unchanged B0 on S's complement and a head fitted to a distorted B on S. The classification
version here keeps that structure (cross-entropy instead of the squared loss).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from study.cache import content_hash
from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark, TensorImages
from study.data.registry import register_benchmark


@dataclass(frozen=True)
class ToyWorld:
    seed: int = 0
    input_dim: int = 20      # d
    feature_dim: int = 5     # k
    subspace_dim: int = 5    # m: the ID subspace S
    classes: int = 4         # C
    train: int = 500
    eval: int = 2000
    ood_in_subspace: float = 0.3  # how much of an OOD input still lies in S
    pretrained_noise: float = 0.1
    task: str = "classification"  # or "regression": one output, B0's error outside S (see above)

    @property
    def outputs(self) -> int:
        return 1 if self.task == "regression" else self.classes

    def generator(self, offset: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1000 + offset)

    def truth(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B* [k, d], V* [C, k] (C = 1 for regression), an orthonormal basis of S [d, m])."""
        g = self.generator(0)
        b_star = torch.randn(self.feature_dim, self.input_dim, generator=g) / self.input_dim ** 0.5
        v_star = torch.randn(self.classes, self.feature_dim, generator=g)[:self.outputs]
        subspace = torch.linalg.qr(torch.randn(self.input_dim, self.subspace_dim, generator=g))[0]
        return b_star, v_star, subspace

    def sample(self, n: int, ood: bool, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        b_star, v_star, subspace = self.truth()
        g = self.generator(offset)
        x = torch.randn(n, self.subspace_dim, generator=g) @ subspace.T
        if ood:
            outside = torch.randn(n, self.input_dim, generator=g)
            x = self.ood_in_subspace * x + outside - outside @ subspace @ subspace.T
        outputs = x @ b_star.T @ v_star.T
        return x, outputs.squeeze(1) if self.task == "regression" else outputs.argmax(1)

    def pretrained(self) -> torch.Tensor:
        """B0 = B* + noise (for regression, the noise's part in S removed)."""
        b_star, _, subspace = self.truth()
        noise = torch.randn(b_star.shape, generator=self.generator(99)) / self.input_dim ** 0.5
        if self.task == "regression":
            noise = noise - noise @ subspace @ subspace.T
        return b_star + self.pretrained_noise * noise

    def fingerprint(self) -> str:
        return content_hash("toy-linear", asdict(self))


@register_benchmark("toy-linear")
def toy_linear(*, cache_dir=None, **world) -> Benchmark:
    return _toy_benchmark("toy-linear", ToyWorld(**world))


@register_benchmark("toy-linear-regression")
def toy_linear_regression(*, cache_dir=None, **world) -> Benchmark:
    return _toy_benchmark("toy-linear-regression", ToyWorld(**{"task": "regression", **world}))


def _toy_benchmark(name: str, world: ToyWorld) -> Benchmark:
    parts = {TRAIN: (world.train, False), ID_VAL: (world.eval, False), ID_TEST: (world.eval, False),
             "offsubspace_val": (world.eval, True), "offsubspace_test": (world.eval, True)}
    splits = {name: TensorImages(*world.sample(n, ood, offset))
              for offset, (name, (n, ood)) in enumerate(parts.items(), start=1)}
    classes = ("y",) if world.task == "regression" else tuple(f"class{i}" for i in range(world.classes))
    return Benchmark(name=name, classes=classes, ood_domains=("offsubspace",), splits=splits,
                     fingerprint=world.fingerprint(), task=world.task)

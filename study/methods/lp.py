"""Linear probing: L2-regularised multinomial logistic regression on frozen, cached features.

The paper fits sklearn's ``LogisticRegression(lbfgs)`` on features scaled by one scalar mean and std of the train
features, along 50 values of C from strong to weak regularisation. This is the same model,

    minimise  mean_i CE(W x_i + b, y_i) + l2/2 * ||W||^2     (the bias is not penalised)

which is sklearn's objective with ``C = 1 / (l2 * n_train)``, solved in torch on the features' device:

1. The features are also centred per dimension. The unpenalised bias absorbs any shift, so the solution is the
   same, but W and b no longer pull against each other.
2. L-BFGS starts every iteration from a preconditioner, the inverse of ``kappa * Sigma + l2 * I`` for W (Sigma
   the features' covariance, eigendecomposed once per path; kappa the softmax's curvature at the starting point)
   and ``1 / kappa`` for b. That is the Hessian's shape up to the class coupling, so the steps are well scaled at
   every strength: weak strengths, where plain L-BFGS (sklearn's) needs hundreds of iterations, take tens.
3. A path over many strengths is solved once, strong to weak, each warm-started from the last (``fit_path``);
   ``cached_path`` stores it, so every trial and seed that asks for the same path reads it instead.

On a regression benchmark (the theory's toy with the squared loss) LP is the theorem's least squares, L2-regularised
(ridge regression): minimise mean_i (w . x_i + b - y_i)^2 + l2 * ||w||^2, in closed form (``ridge_path``).
"""
from __future__ import annotations

import copy
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from study.cache import cached, content_hash
from study.data import ID_VAL, TRAIN
from study.methods.evaluation import EpochResult, check_finite, restrict
from study.methods.features import Features
from study.methods.metrics import CLASSIFICATION, REGRESSION, score, score_splits, search_score

# The solver's settings (part of every cached path's key): a solve stops when the largest gradient entry is at most
# ``tolerance`` (sklearn's default criterion) and the preconditioned step is at most ``step`` times |θ| (so strongly
# regularised heads, which are small, are solved as precisely as weak ones), or after ``max_iter`` iterations.
# L-BFGS keeps ``memory`` curvature pairs.
SOLVER = {"version": 2, "tolerance": 1e-4, "step": 1e-3, "max_iter": 500, "memory": 10}


@dataclass
class LinearHead:
    """Logits = features @ weight.T + bias, on the backbone's raw (unscaled) features."""

    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias

    @property
    def norm(self) -> float:
        return self.weight.norm().item()

    def install(self, model: nn.Module) -> None:
        """Copy this head into the model's classifier (timm's ``get_classifier()``)."""
        classifier = model.get_classifier()
        with torch.no_grad():
            classifier.weight.copy_(self.weight)
            classifier.bias.copy_(self.bias)


@dataclass
class ProbeFit:
    """One point of an LP path: the strength, the head, its mean train cross-entropy and the L-BFGS iterations."""

    l2: float
    head: LinearHead
    train_loss: float
    iterations: int


def scalar_standardizer(train_features: torch.Tensor) -> tuple[float, float]:
    """One mean and one std over all train feature entries, as the paper's LP scales its features."""
    return train_features.mean().item(), train_features.std().item()


def to_l2(kind: str, values: Sequence[float], features: Features) -> list[float]:
    """L2 strengths from ``("l2", values)`` or from sklearn's ``("C", values)``: l2 = 1 / (C * n_train)."""
    if kind == "l2":
        return list(values)
    n = len(features[TRAIN][1])
    return [1.0 / (c * n) for c in values]


class _Objective:
    """The LP objective over θ = (W flattened, b), on train features standardised, centred and rotated into the
    eigenbasis of their covariance, where the preconditioner is diagonal."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, *, device):
        _, self.std = scalar_standardizer(x)
        self.center = x.mean(0).to(device)
        self.classes, self.dim, self.y = num_classes, x.shape[1], y.to(device)
        covariance = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=device)
        for chunk in x.split(_CHUNK):  # two passes over the features, so that only one standardised copy exists
            chunk = self._standardised(chunk)
            covariance += (chunk.T @ chunk).double()
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance / len(y))
        self.eigenvalues, self.rotation = eigenvalues.clamp(min=0).float(), eigenvectors.float()
        self.x = torch.empty(x.shape, device=device)
        for start in range(0, len(y), _CHUNK):
            self.x[start:start + _CHUNK] = self._standardised(x[start:start + _CHUNK]) @ self.rotation

    def _standardised(self, chunk: torch.Tensor) -> torch.Tensor:
        return (chunk.to(self.center.device) - self.center) / self.std

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return theta[:-self.classes].view(self.classes, self.dim), theta[-self.classes:]

    def __call__(self, theta: torch.Tensor, l2: float) -> tuple[float, float, torch.Tensor, float]:
        """(objective, mean train CE, gradient, softmax curvature), a chunk of rows at a time.

        The logits are float32 matrix products; the softmax and the sums are float64. Strongly regularised heads
        have logits near 0, where the cross-entropy is log(C) plus a change in its seventh digit: float32 would
        round that change away, and the line search would wander."""
        weight, bias = self.split(theta)
        cross_entropy = torch.zeros((), dtype=torch.float64, device=weight.device)
        curvature = torch.zeros_like(cross_entropy)
        gradient_weight, gradient_bias = l2 * weight, torch.zeros_like(bias)
        for x, y in zip(self.x.split(_CHUNK), self.y.split(_CHUNK)):
            logits = torch.addmm(bias, x, weight.T).double()
            log_norm = logits.logsumexp(1, keepdim=True)
            rows = torch.arange(len(y), device=y.device)
            cross_entropy += (log_norm.squeeze(1) - logits[rows, y]).sum()
            residual = (logits - log_norm).exp_()  # probabilities, then minus the one-hot labels
            curvature += (residual * (1 - residual)).sum()
            residual[rows, y] -= 1
            residual = residual.float() / len(self.y)
            gradient_weight += residual.T @ x
            gradient_bias += residual.sum(0)
        cross_entropy, curvature = cross_entropy.item(), curvature.item()
        cross_entropy /= len(self.y)
        objective = cross_entropy + 0.5 * l2 * weight.double().pow(2).sum().item()
        curvature = max(curvature / (len(self.y) * self.classes), 1e-6)
        gradient = torch.cat([gradient_weight.flatten(), gradient_bias])
        return objective, cross_entropy, gradient, curvature

    def preconditioner(self, l2: float, curvature: float) -> torch.Tensor:
        """The diagonal of M^-1, M = kappa * Sigma + l2 * I for W and kappa for b (kappa: ``curvature``)."""
        weight = (1.0 / (curvature * self.eigenvalues + l2)).repeat(self.classes)
        return torch.cat([weight, torch.full((self.classes,), 1.0 / curvature, device=weight.device)])

    def head(self, theta: torch.Tensor) -> LinearHead:
        """θ back in the raw features' coordinates: rotated back, the standardisation folded in."""
        weight, bias = self.split(theta)
        weight = weight @ self.rotation.T / self.std
        return LinearHead(weight, bias - weight @ self.center)


_CHUNK = 65_536  # rows per chunk: the features are standardised, and the logits made, a chunk at a time


class _LBFGS:
    """Preconditioned L-BFGS with a backtracking (Armijo) line search from step 1, along a path of strengths.

    From one strength to the next, the curvature pairs carry over, corrected for the change of the penalty (exact:
    the penalty is quadratic), and the solve starts from the linear extrapolation of the last two solutions when
    that is lower than the last one. A solve stops when it has converged (``SOLVER``), or when no step lowers the
    objective any more (as far as float32 features allow).
    """

    def __init__(self, objective: _Objective):
        self.objective, self.history = objective, deque(maxlen=SOLVER["memory"])
        self.theta = torch.zeros(objective.classes * (objective.dim + 1), device=objective.x.device)
        self.previous, self.cross_entropy, self.l2 = None, None, None

    def solve(self, l2: float) -> tuple[torch.Tensor, float, int]:
        """(θ at the minimum for ``l2``, the mean train CE there, iterations), from where the last solve ended."""
        self._carry_over(l2)
        theta, value, gradient, curvature = self._start(l2)
        iteration = 0
        for iteration in range(SOLVER["max_iter"]):
            precondition = self.objective.preconditioner(l2, curvature)  # the softmax's curvature where θ is now
            if self._converged(theta, precondition * gradient, gradient):
                break
            direction = -self._two_loop(gradient, precondition)
            slope = (gradient @ direction).item()
            if slope >= 0:  # rounding spoiled the curvature pairs: restart from the preconditioned gradient
                self.history.clear()
                direction = -precondition * gradient
                slope = (gradient @ direction).item()
            step, new = 1.0, self.objective(theta + direction, l2)
            while new[0] > value + 1e-4 * step * slope and step > 1e-3:
                step /= 2
                new = self.objective(theta + step * direction, l2)
            if new[0] >= value:
                break
            change, turn = step * direction, new[2] - gradient
            if (change @ turn).item() > 0:
                self.history.append((change, turn))
            theta, (value, self.cross_entropy, gradient, curvature) = theta + change, new
        self.previous, self.theta = self.theta, theta
        return theta, self.cross_entropy, iteration

    def _converged(self, theta: torch.Tensor, step: torch.Tensor, gradient: torch.Tensor) -> bool:
        """sklearn's test, and the preconditioned (Newton-like) ``step`` small next to W and b, each on its own."""
        if gradient.abs().max().item() > SOLVER["tolerance"]:
            return False
        return all(change.norm() <= SOLVER["step"] * value.norm()
                   for change, value in zip(self.objective.split(step), self.objective.split(theta)))

    def _start(self, l2: float):
        """(θ, objective, gradient, curvature) at the better of the last solution and the extrapolated one."""
        if self.previous is not None:
            guess = 2 * self.theta - self.previous
            weight, _ = self.objective.split(self.theta)
            value, cross_entropy, gradient, curvature = self.objective(guess, l2)
            if value < self.cross_entropy + 0.5 * l2 * weight.double().pow(2).sum().item():  # the last one's value
                self.cross_entropy = cross_entropy
                return guess, value, gradient, curvature
        value, self.cross_entropy, gradient, curvature = self.objective(self.theta, l2)
        return self.theta, value, gradient, curvature

    def _carry_over(self, l2: float) -> None:
        if self.l2 is not None and self.history:
            penalised = torch.ones_like(self.history[0][0])
            penalised[-self.objective.classes:] = 0  # the bias is not penalised
            pairs = [(change, turn + (l2 - self.l2) * change * penalised) for change, turn in self.history]
            self.history = deque(((c, t) for c, t in pairs if (c @ t).item() > 0), maxlen=SOLVER["memory"])
        self.l2 = l2

    def _two_loop(self, gradient: torch.Tensor, precondition: torch.Tensor) -> torch.Tensor:
        """The L-BFGS inverse-Hessian estimate times ``gradient``, its initial matrix the scaled preconditioner."""
        q, alphas = gradient.clone(), []
        for change, turn in reversed(self.history):
            alpha = (change @ q) / (change @ turn)
            alphas.append(alpha)
            q -= alpha * turn
        r = precondition * q
        if self.history:
            change, turn = self.history[-1]
            r *= (change @ turn) / (turn @ (precondition * turn))
        for (change, turn), alpha in zip(self.history, reversed(alphas)):
            r += (alpha - (turn @ r) / (change @ turn)) * change
        return r


def fit_path(features: Features, l2_values: Sequence[float], num_classes: int, *, device="cpu") -> list[ProbeFit]:
    """One head per L2 value, from the strongest to the weakest, each warm-started from the previous, on
    ``device``."""
    x, y = features[TRAIN]
    objective = _Objective(x, y, num_classes, device=device)
    solver, path = _LBFGS(objective), []
    for l2 in sorted(l2_values, reverse=True):
        theta, train_loss, iterations = solver.solve(l2)
        path.append(ProbeFit(l2, objective.head(theta), train_loss, iterations))
    return path


def ridge_path(features: Features, l2_values: Sequence[float], *, device="cpu") -> list[ProbeFit]:
    """The regression LP for each L2 value (strongest first): the ridge solution on centred float64 features, the
    unpenalised bias absorbing the means. ``train_loss`` is the mean squared error on the train split."""
    x, y = (tensor.to(device, torch.float64) for tensor in features[TRAIN])
    center, target = x.mean(0), y.mean()
    x, y = x - center, y - target
    gram, moment = x.T @ x / len(y), x.T @ y / len(y)
    path = []
    for l2 in sorted(l2_values, reverse=True):
        weight = torch.linalg.solve(gram + l2 * torch.eye(len(gram), dtype=gram.dtype, device=device), moment)
        head = LinearHead(weight[None].float(), (target - weight @ center)[None].float())
        path.append(ProbeFit(l2, head, (x @ weight - y).pow(2).mean().item(), iterations=0))
    return path


def cached_path(features: Features, l2_values: Sequence[float], num_classes: int, *,
                features_file: str | os.PathLike | None = None, device="cpu",
                task: str = CLASSIFICATION) -> list[ProbeFit]:
    """``fit_path`` (``ridge_path`` for a regression ``task``), computed once per (features, strengths) by
    whichever trial asks first, on its device, and read by every later one (other strengths of the same grid, other
    seeds, LP-FT's LP stage). The path is cached beside ``features_file``, the cache file ``features`` were read from
    (None: not cached)."""
    def solve():
        if task == REGRESSION:
            return ridge_path(features, l2_values, device=device)
        return fit_path(features, l2_values, num_classes, device=device)

    if features_file is None:
        return solve()

    def compute():
        path = solve()
        return {"l2": [fit.l2 for fit in path], "train_loss": [fit.train_loss for fit in path],
                "iterations": [fit.iterations for fit in path],
                "weight": torch.stack([fit.head.weight for fit in path]).cpu(),
                "bias": torch.stack([fit.head.bias for fit in path]).cpu()}

    stored = cached(path_file(features_file, l2_values, _probe(task)), compute, mmap=True)
    return [ProbeFit(l2, LinearHead(stored["weight"][k].to(device), stored["bias"][k].to(device)),
                     stored["train_loss"][k], stored["iterations"][k]) for k, l2 in enumerate(stored["l2"])]


SCORES = 2  # what a scored path holds (2: also the OOD val splits' per-example correctness): part of its file's name


def path_file(features_file: str | os.PathLike, l2_values: Sequence[float], what: str = "lp") -> Path:
    """Where the LP path over ``l2_values`` on the features in ``features_file`` is cached (beside them): its heads
    (``what="lp"``; ``"ridge"`` for regression), or every head's scores (``what="lp-scores"``)."""
    key = content_hash(what, sorted(l2_values, reverse=True), SOLVER)
    features_file = Path(features_file)
    return features_file.with_name(f"{features_file.stem}-{what}-{key}.pt")


def _probe(task: str) -> str:
    return "ridge" if task == REGRESSION else "lp"


def best_fit(features: Features, path: list[ProbeFit], task: str = CLASSIFICATION) -> ProbeFit:
    """The first maximum of ID-val accuracy along the path (strong to weak L2), as the paper picks it (regression:
    the first minimum of the ID-val squared error)."""
    x, y = features[ID_VAL]
    scores = [search_score(score(fit.head.logits(x.to(fit.head.weight.device)), y.to(fit.head.weight.device), task))
              for fit in path]
    return path[scores.index(max(scores))]


def linear_probe(features: Features, *, l2: float, num_classes: int, path: Sequence[float] = (),
                 features_file: str | os.PathLike | None = None, device="cpu",
                 class_subsets: dict[str, tuple[int, ...]] | None = None,
                 task: str = CLASSIFICATION) -> Iterator[EpochResult]:
    """LP as a method: the head for strength ``l2`` with every evaluation split scored (epoch 1), on ``device``.

    ``path`` (the study's whole grid, ``l2`` among it) is solved as one warm-started path and every head of it
    scored once, both cached beside ``features_file``: the grid's other trials, and every seed's, read their
    results (see ``cached_path``). ``class_subsets`` restricts the predictions on splits that cover only some
    classes (see ``restrict``). A restarted LP trial reads them again: it needs no state to resume from. ``task``:
    ``regression`` probes by ridge regression (``ridge_path``)."""
    values = sorted(set(path) | {l2}, reverse=True)

    def score_path():
        fits = cached_path(features, values, num_classes, features_file=features_file, device=device, task=task)
        return [_scored(fit, features, class_subsets or {}, device, task) for fit in fits]

    scores_file = None if features_file is None else path_file(features_file, values, f"{_probe(task)}-scores{SCORES}")
    scored = score_path() if scores_file is None else _read_once(scores_file, score_path)
    result = copy.deepcopy(scored[values.index(l2)])
    check_finite(torch.tensor(result["train_loss"]), epoch=1)
    yield EpochResult(epoch=1, splits=result["splits"], train_loss=result["train_loss"],
                      extras={"head_norm": result["head_norm"]})


_LAST_READ: dict[tuple, list] = {}


def _read_once(file: Path, compute) -> list:
    """The scored path in ``file``, read once per process: Tune reuses a worker for trial after trial of the same
    path, and reading 50 heads' scores costs 30 ms, more than the rest of an LP trial. Kept by the file's identity
    on disk, so a cache cleared or rewritten is read (or made) again; only the last path read is kept."""
    scored = _LAST_READ.get(_identity(file))
    if scored is None:
        scored = cached(file, compute)
        _LAST_READ.clear()
        _LAST_READ[_identity(file)] = scored
    return scored


def _identity(file: Path) -> tuple | None:
    try:
        stat = file.stat()
    except FileNotFoundError:
        return None
    return file, stat.st_ino, stat.st_mtime_ns, stat.st_size


def _scored(fit: ProbeFit, features: Features, class_subsets: dict, device, task: str) -> dict:
    """A head's metrics on every evaluation split, as plain data (cacheable)."""
    logits, labels = {}, {}
    for split, (x, y) in features.items():
        if split != TRAIN:
            logits[split] = restrict(fit.head.logits(x.to(device)), class_subsets.get(split))
            labels[split] = y.to(device)
    return {"splits": score_splits(logits, labels, ID_VAL, task), "train_loss": fit.train_loss,
            "head_norm": fit.head.norm}

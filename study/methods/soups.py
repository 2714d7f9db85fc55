"""Model soups (Wortsman et al. 2022) from a sweep's own trials: averages of fine-tuned weights that share a starting
point (the same seed: the same new head, or the same LP head, and the same pretrained encoder).

- **uniform**: the mean of every member's weights;
- **greedy**: the members sorted by ID-val accuracy, best first; each is added only if the soup's ID-val accuracy
  does not fall (mlfoundations/model-soups' rule), so a greedy soup of one trial is that trial.

Plain PyTorch on state dicts; floating-point entries are averaged (batch-norm statistics with the weights), integer
ones (batch counters) taken from the first member.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

UNIFORM, GREEDY = "uniform", "greedy"
KINDS = (UNIFORM, GREEDY)


def greedy_soup(members: Sequence[tuple[str, float]], state_of: Callable[[str], dict],
                val_accuracy: Callable[[dict], float]) -> tuple[list[str], dict, float]:
    """(the names kept, the soup, its ID-val accuracy) of the greedy soup of ``members`` ((name, its own ID-val
    accuracy)): sorted best first, each added only if the soup's ID-val accuracy (``val_accuracy(state)``) does not
    fall. ``state_of(name)`` reads a member's weights (one at a time: a soup of big models never holds them all)."""
    ordered = sorted(members, key=lambda member: -member[1])
    kept, total = [ordered[0][0]], {name: value.float() for name, value in state_of(ordered[0][0]).items()}
    soup, best = _mean(total, 1, state_of(ordered[0][0])), ordered[0][1]
    for name, _ in ordered[1:]:
        state = state_of(name)
        candidate_total = {key: total[key] + state[key].float() for key in total}
        candidate = _mean(candidate_total, len(kept) + 1, state)
        accuracy = val_accuracy(candidate)
        if accuracy >= best:
            kept, total, soup, best = kept + [name], candidate_total, candidate, accuracy
    return kept, soup, best


def uniform_soup(names: Sequence[str], state_of: Callable[[str], dict]) -> dict:
    """The mean of the named members' weights, read one at a time."""
    total, template = None, None
    for name in names:
        state = state_of(name)
        template = template or state
        total = ({key: value.float() for key, value in state.items()} if total is None else
                 {key: total[key] + state[key].float() for key in total})
    return _mean(total, len(names), template)


def _mean(total: dict[str, torch.Tensor], count: int, template: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: (total[name] / count).to(value.dtype) if value.is_floating_point() else value.clone()
            for name, value in template.items()}

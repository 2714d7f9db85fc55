"""Selection on hand-built tables whose answers are known."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from study.analysis.selection import select

SPLITS = ("id_val", "id_test", "a_val", "a_test", "b_val", "b_test")


def rows(trial, method, seed, lr, epoch, outcome="finished", **acc):
    values = {split: acc.get(split, 50.0) for split in SPLITS}
    return [{"study": "s", "trial_id": trial, "method": method, "seed": seed, "lr": lr, "epoch": epoch,
             "split": split, "accuracy": value, "loss": 1.0, "outcome": outcome} for split, value in values.items()]


def table(*groups):
    return pd.DataFrame([row for group in groups for row in group])


def test_id_val_rule_picks_config_and_epoch_by_mean_over_seeds():
    t = table(
        # lr=0.1: epoch 2 has the best ID val on average (80, 84 -> 82)
        rows("t1", "ft", 0, 0.1, 1, id_val=70, id_test=71), rows("t1", "ft", 0, 0.1, 2, id_val=80, id_test=81),
        rows("t2", "ft", 1, 0.1, 1, id_val=72, id_test=73), rows("t2", "ft", 1, 0.1, 2, id_val=84, id_test=85),
        # lr=0.01: one seed very good (90) but the other poor (70) -> mean 80 < 82
        rows("t3", "ft", 0, 0.01, 1, id_val=90, id_test=99), rows("t4", "ft", 1, 0.01, 1, id_val=70, id_test=99),
    )
    s = select(t, "ft", "id_val")
    assert s.config == {"lr": 0.1} and s.epoch == 2
    assert s.splits["id_test"]["mean"] == pytest.approx(83.0)
    assert s.splits["id_test"]["std"] == pytest.approx(math.sqrt(8.0))  # sample std of 81, 85
    assert s.splits["id_test"]["n"] == 2
    assert sorted(s.trial_ids) == ["t1", "t2"]


def test_oracle_rule_uses_mean_ood_val_and_reports_ood_average():
    t = table(
        rows("t1", "ft", 0, 0.1, 1, id_val=90, a_val=10, b_val=10, a_test=11, b_test=13),
        rows("t1", "ft", 0, 0.1, 2, id_val=95, a_val=20, b_val=20, a_test=21, b_test=23),
        rows("t2", "ft", 0, 0.01, 1, id_val=60, a_val=70, b_val=50, a_test=71, b_test=53),
    )
    by_id = select(t, "ft", "id_val")
    oracle = select(t, "ft", "ood_oracle")
    assert (by_id.config, by_id.epoch) == ({"lr": 0.1}, 2)
    assert (oracle.config, oracle.epoch) == ({"lr": 0.01}, 1)
    assert oracle.criterion == pytest.approx(60.0)
    assert oracle.splits["ood_avg"]["mean"] == pytest.approx(62.0)
    assert set(oracle.splits) == {"id_test", "a_test", "b_test", "ood_avg"}


def test_epoch_zero_diverged_and_incomplete_configs_are_never_selected():
    t = table(
        rows("t1", "ft", 0, 0.1, 0, id_val=99),                       # the starting point: not a candidate
        rows("t1", "ft", 0, 0.1, 1, id_val=60),
        rows("t2", "ft", 0, 1.0, 1, id_val=98),                       # this seed finished ...
        rows("t3", "ft", 1, 1.0, 1, id_val=97, outcome="diverged"),   # ... but another diverged
        rows("t4", "ft", 0, 3.0, 1, id_val=100, outcome="failed"),
    )
    s = select(t, "ft", "id_val")
    assert (s.config, s.epoch, s.criterion) == ({"lr": 0.1}, 1, 60.0)


def test_ties_go_to_the_first_config_and_earliest_epoch():
    t = table(rows("t1", "lp", 0, 0.5, 1, id_val=80), rows("t2", "lp", 0, 0.2, 1, id_val=80),
              rows("t3", "ft", 0, 0.1, 1, id_val=80), rows("t3", "ft", 0, 0.1, 2, id_val=80))
    assert select(t, "lp", "id_val").config == {"lr": 0.5}
    assert select(t, "ft", "id_val").epoch == 1


def test_nothing_eligible_gives_none_and_bad_rule_raises():
    t = table(rows("t1", "ft", 0, 0.1, 1, outcome="diverged"))
    assert select(t, "ft", "id_val") is None
    with pytest.raises(ValueError, match="unknown selection rule"):
        select(t, "ft", "best_test")


def test_small_ood_val_reads_exactly_k_per_class_drawn_by_seed():
    from study.analysis.selection import SmallVal

    labels = [0] * 10 + [1] * 5 + [2] * 2
    subset = SmallVal(k=3, seed=0, labels={"a_val": labels}).subset("a_val")
    assert [int((np.asarray(labels)[subset] == c).sum()) for c in (0, 1, 2)] == [3, 3, 2], "k each; all of fewer"
    assert list(subset) == list(SmallVal(k=3, seed=0, labels={"a_val": labels}).subset("a_val"))
    assert list(subset) != list(SmallVal(k=3, seed=1, labels={"a_val": labels}).subset("a_val"))


def test_small_ood_val_selects_by_the_k_examples_alone():
    """Config A classifies exactly the k chosen examples of each class; config B all the others. On the whole of
    OOD val B is far better, on the small set A is perfect: the rule must pick A."""
    from study.analysis.selection import SmallVal
    from study.methods.metrics import pack_correct

    labels = [0] * 20 + [1] * 20
    small = SmallVal(k=2, seed=7, labels={"a_val": labels, "b_val": labels})
    chosen = {split: set(small.subset(split).tolist()) for split in ("a_val", "b_val")}

    def bits(split, hit):
        return pack_correct(torch.tensor([(i in chosen[split]) == hit for i in range(40)]))

    t = table(rows("t1", "ft", 0, 0.1, 1, a_val=10, b_val=10, a_test=30, b_test=30),
              rows("t2", "ft", 0, 0.01, 1, a_val=90, b_val=90, a_test=70, b_test=70))
    t["correct"] = None
    for trial, hit in (("t1", True), ("t2", False)):
        for split in ("a_val", "b_val"):
            t.loc[(t["trial_id"] == trial) & (t["split"] == split), "correct"] = bits(split, hit)
    picked = select(t, "ft", "small_ood_val", small)
    assert picked.config == {"lr": 0.1} and picked.criterion == pytest.approx(100.0)
    assert select(t, "ft", "ood_oracle").config == {"lr": 0.01}
    assert select(t, "ft", "small_ood_val") is None, "no labels: the rule does not apply"


def test_leave_one_domain_out_never_reads_the_test_split_of_the_domain_it_selects_on():
    """a_val prefers lr=0.1, b_val lr=0.01. Selecting on a reports b_test of lr=0.1, selecting on b reports a_test of
    lr=0.01; the two test values it must never read are poisoned."""
    poison = 1e9
    t = table(rows("t1", "ft", 0, 0.1, 1, a_val=90, b_val=10, id_test=80, a_test=poison, b_test=40),
              rows("t2", "ft", 0, 0.01, 1, a_val=10, b_val=90, id_test=60, a_test=50, b_test=poison))
    picked = select(t, "ft", "leave_one_domain_out")
    assert picked.held_out == {"a": "lr=0.1 (1)", "b": "lr=0.01 (1)"} and picked.epoch == 1
    assert picked.splits["ood_avg"]["mean"] == pytest.approx((40 + 50) / 2)
    assert picked.splits["id_test"]["mean"] == pytest.approx((80 + 60) / 2)
    assert picked.splits["a_test"]["mean"] == 50 and picked.splits["b_test"]["mean"] == 40
    assert picked.test_reads == 4, "per held-out domain: one seed's ID test and the other domain's test"
    single = table(rows("t1", "ft", 0, 0.1, 1))
    single = single[~single["split"].str.startswith("b_")]
    assert select(single, "ft", "leave_one_domain_out") is None, "one OOD domain: the rule does not apply"

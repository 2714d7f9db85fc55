"""A trial of 2 DDP workers (gloo, a TorchTrainer inside the Tune trial) against a trial of 1, same seed and global
batch. LP-FT trains with batch norm frozen, so the two compute the same thing: they agree to float rounding (the same
predictions; losses to 1e-3, as summing two half-batch gradients rounds differently and two epochs amplify it).
(FT, which trains batch norm on each worker's half batch as DDP does, runs the same DDP loop; its match is only
statistical, and a second 2-worker trial costs the suite half a minute.)"""
import pytest

from study.results import read_table


@pytest.fixture(scope="module")
def lpft_on_one_and_two_workers(smoke_study, ddp_study):
    """The smoke study's LP-FT trial (one worker) and the same trial of the "ddp" study (two), by epoch and split."""
    results, _ = smoke_study
    key = ["epoch", "split"]
    one, two = (read_table(results / study) for study in ("smoke", "ddp"))
    return tuple(table[table["method"] == "lpft"].set_index(key).sort_index() for table in (one, two))


def test_lpft_on_two_workers_equals_one_worker(lpft_on_one_and_two_workers):
    one, two = lpft_on_one_and_two_workers
    assert list(one.index) == list(two.index) and len(one) == 6 + 2 * 7  # 6 eval splits per epoch 0..2, train loss from epoch 1
    assert (one["outcome"] == "finished").all() and (two["outcome"] == "finished").all()
    assert two["accuracy"].tolist() == pytest.approx(one["accuracy"].tolist(), abs=1e-6, nan_ok=True)
    assert two["loss"].tolist() == pytest.approx(one["loss"].tolist(), rel=1e-3)

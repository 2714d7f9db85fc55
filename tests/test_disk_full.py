"""A file system that fills mid-study (a tmpfs of 64 MiB mounted for the test, a ballast file written once the
first trial has reported): the study stops itself in one line naming the path and the free space, leaves no part of
the table and no checkpoint half-written, and once the ballast is gone `study resume` completes it, nothing lost or
counted twice."""
import subprocess
import threading
import time

import pandas as pd
import pytest
import torch

from helpers import ROOT, study_here
from study.cli import main
from study.results import read_table, table_dir
from study.tune import disk
from test_faults import assert_counted_once


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_study_and_resume_completes_it(small_disk, cache_dir, monkeypatch, capsys):
    monkeypatch.setattr(disk, "RESERVE_MB", 16.0)
    study_dir, ballast = small_disk / "results" / "full", small_disk / "ballast"

    def reported_an_epoch() -> bool:
        for part in table_dir(study_dir).glob("*.parquet") if table_dir(study_dir).is_dir() else []:
            try:
                if pd.read_parquet(part)["epoch"].max() >= 1:
                    return True
            except (OSError, ValueError):  # replaced while read
                pass
        return False

    def fill():
        while not reported_an_epoch():
            time.sleep(0.05)
        ballast.write_bytes(b"\0" * int((disk.free_mb(small_disk) - 8) * 2**20))  # 8 MiB left: under the reserve

    filler = threading.Thread(target=fill, daemon=True)
    filler.start()
    code = main(["run", str(ROOT / "search_spaces" / "smoke.yaml"), "--results-dir", str(small_disk / "results"),
                 "--name", "full", "--no-progress", "--set", "methods={ft: {lr: [0.03], epochs: 3}}",
                 "--set", "wise_alphas=[]"])
    filler.join(timeout=60)
    err = capsys.readouterr().err
    assert code == 130, err[-3000:]
    stopped = [line for line in err.splitlines() if line.startswith("stopped: ")]
    assert stopped and stopped[0].startswith(f"stopped: {study_dir}: the file system is full (") and \
        f"`study resume {study_dir}`" in stopped[0], err[-3000:]

    assert not list(small_disk.rglob("*.partial")), "nothing half-written"
    for state in small_disk.rglob("checkpoint_*/state.pt"):
        torch.load(state, weights_only=True)  # every checkpoint whole
    reported = read_table(study_dir)

    ballast.unlink()
    resumed = study_here("resume", study_dir)
    assert resumed["trials"]["finished"] == 1
    table = read_table(study_dir)
    assert len(table.merge(reported[["trial_id", "epoch", "split"]])) == len(reported), "nothing reported is lost"
    assert_counted_once(small_disk / "results", "full", table)
    assert sorted(table["epoch"].unique()) == [0, 1, 2, 3]

"""One driver per study: two runs of one name race for its folder and exactly one wins; a lock dies with its process
(SIGKILL included), so `study resume` takes it over; a refused run leaves nothing behind."""
import subprocess
import sys
import time

import pytest

from study.tune.lock import StudyBusy, StudyLock, is_locked
from study.tune.runner import StudyExists


def test_of_two_runs_of_one_name_exactly_one_holds_the_study(tmp_path):
    folder = tmp_path / "results" / "same"
    first = StudyLock(folder, new=True).acquire()
    with pytest.raises(StudyBusy, match=r"same: the study is running now \(study run on .*, pid \d+, since .*\); "
                                        "wait for it to end, or pass --name NEW_NAME"):
        StudyLock(folder, new=True).acquire()
    with pytest.raises(StudyBusy):
        StudyLock(folder, new=False, command="study resume").acquire()
    assert is_locked(folder)
    first.release()
    assert not (tmp_path / "results").exists(), "a run that never started removes what it created"


def test_a_started_study_keeps_its_folder_and_refuses_a_second_run_once_ended(tmp_path):
    folder = tmp_path / "kept"
    with StudyLock(folder, new=True) as lock:
        lock.started()
        (folder / "config.yaml").write_text("name: kept\n")
    assert folder.is_dir() and not is_locked(folder)
    with pytest.raises(StudyExists, match="already holds a study named 'kept'; `study resume"):
        StudyLock(folder, new=True).acquire()


def test_a_killed_drivers_lock_is_free_for_resume(tmp_path):
    folder = tmp_path / "crashed"
    holder = subprocess.Popen([sys.executable, "-c", f"""
from study.tune.lock import StudyLock
lock = StudyLock({str(folder)!r}, new=True).acquire(); lock.started()
print("held", flush=True)
import time; time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert is_locked(folder)
    holder.kill()
    holder.wait()
    deadline = time.time() + 5
    while is_locked(folder) and time.time() < deadline:
        time.sleep(0.05)
    with StudyLock(folder, new=False, command="study resume"):
        assert is_locked(folder)

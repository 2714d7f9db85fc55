"""Search algorithms and early stopping, each through a real study: Optuna proposals, and per-method ASHA (in the
session's smoke study)."""
from helpers import run_study_here
from study.results import read_table


def test_an_optuna_study_samples_its_space_and_runs_every_proposal_per_seed(tmp_path, cache_dir):
    report = run_study_here("smoke.yaml", tmp_path, "--name", "sampled", "--set", "search.algorithm=optuna",
                            "--set", "search.num_samples=2", "--set", "seeds=[0,1]",
                            "--set", "methods={lp: {l2: {loguniform: [1.0e-4, 1.0e-2]}}}")
    assert report["trials"] == {"total": 4, "finished": 4, "diverged": 0, "failed": 0}
    table = read_table(tmp_path / "sampled")
    per_seed = table.groupby("l2")["seed"].apply(lambda seeds: sorted(set(seeds)))
    assert len(per_seed) == 2 and all(seeds == [0, 1] for seeds in per_seed), "each proposal runs once per seed"
    assert all(1e-4 <= l2 <= 1e-2 for l2 in per_seed.index)


def test_asha_stops_a_trial_only_against_trials_of_its_own_method(smoke_study):
    """LoRA starts slower than LP and the methods that start from its head (LoRA's adapters start at zero, its head
    new): one set of rungs for the whole smoke study would stop it at the first rung, below most trials there. Per
    method, it is alone in its rungs and runs on."""
    results, _ = smoke_study
    table = read_table(results / "smoke")
    assert table.groupby("method")["epoch"].max()["lora"] == 2, "the only LoRA trial is never ranked against others"
    lora = table[(table["method"] == "lora") & (table["split"] == "id_val")].set_index("epoch")["accuracy"]
    rung = table[(table["epoch"] == 1) & (table["split"] == "id_val") & (table["method"] != "lora")]["accuracy"]
    assert lora[1] < rung.median(), "below the rung's median, as Ray's ASHA (keeping the top quarter) would cut it"
    assert set(table[table["method"] != "ft"]["outcome"]) == {"finished"}

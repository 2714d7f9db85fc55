"""Search algorithms and early stopping, each through a real study: Optuna proposals and per-method ASHA."""
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


def test_asha_stops_a_trial_only_against_trials_of_its_own_method(tmp_path, cache_dir):
    """LoRA starts slower than FT (its adapters start at zero): one set of rungs for the whole study would stop it
    at the first rung behind the FT trials that reached it first. Per method, it is alone in its rungs and runs on."""
    run_study_here("smoke.yaml", tmp_path, "--name", "early", "--set", "search.scheduler=asha",
                   "--set", "search.grace_epochs=1", "--set", "wise_alphas=[]",
                   "--set", "methods={ft: {lr: [0.03, 0.1], epochs: 2}, lora: {lr: [0.1], epochs: 2}}")
    table = read_table(tmp_path / "early")
    last_epoch = table.groupby("method")["epoch"].max()
    assert last_epoch["lora"] == 2, "the only LoRA trial must never be ranked against FT trials"
    assert set(table["outcome"]) == {"finished"}

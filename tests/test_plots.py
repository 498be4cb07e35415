"""Plots logged as MLflow artifacts: the data they draw (pure) and that they are written as PNG files."""

from raysweep.plots import eval_series, plot_run, plot_sweep, sweep_series, train_series


def _ev(kind, step, acc):
    return {"kind": kind, "step": step, "eval": {"ood": {"accuracy": acc, "ci95": [acc / 2, acc * 2], "n": 8}}}


def test_series_take_the_latest_record_of_each_step_in_step_order():
    recs = [_ev("eval", 4, 0.5), _ev("checkpoint", 0, 0.25), {"kind": "train", "step": 2, "reward": -1.0},
            _ev("eval", 4, 0.375), {"kind": "train", "step": 1, "reward": 0.5}, {"kind": "resume", "from_step": 2}]
    assert eval_series(recs) == {"ood": [(0, 0.25, 0.125, 0.5), (4, 0.375, 0.1875, 0.75)]}
    assert train_series(recs) == [(1, 0.5), (2, -1.0)]
    assert train_series(recs, "loss") == []


def _row(seed, step, lr, start, final):
    return {"cell": f"c{seed}{step}{lr}", "sft.seed": seed, "rl.sft_step": step, "rl.learning_rate": lr,
            "ood_acc_start": start, "ood_ci_low_start": start, "ood_ci_high_start": start,
            "ood_acc_final": final, "ood_ci_low_final": final, "ood_ci_high_final": final}


def test_sweep_series_has_the_sft_curve_and_one_rl_curve_per_setting():
    rows = [_row(0, 20, 1e-4, 0.25, 0.5), _row(0, 0, 1e-4, 0.0, 0.125), _row(0, 0, 1e-3, 0.0, 0.25),
            {"cell": "unfinished", "sft.seed": 0, "rl.sft_step": 20, "rl.learning_rate": 1e-3}]
    series = sweep_series(rows, "ood")
    assert series == {"after SFT": [(0, 0.0, 0.0, 0.0), (20, 0.25, 0.25, 0.25)],
                      "after RL: learning_rate=0.0001": [(0, 0.125, 0.125, 0.125), (20, 0.5, 0.5, 0.5)],
                      "after RL: learning_rate=0.001": [(0, 0.25, 0.25, 0.25)]}
    two_seeds = sweep_series([_row(0, 0, 1e-4, 0.0, 0.1), _row(1, 0, 1e-4, 0.0, 0.2)], "ood")
    assert sorted(two_seeds) == ["after RL: learning_rate=0.0001 (seed 0)", "after RL: learning_rate=0.0001 (seed 1)",
                                 "after SFT (seed 0)", "after SFT (seed 1)"]


def test_plots_are_png_files_and_nothing_to_draw_draws_nothing(tmp_path):
    png = b"\x89PNG"
    run = plot_run([_ev("eval", 0, 0.1), _ev("eval", 2, 0.3), {"kind": "train", "step": 1, "reward": 0.2}],
                   tmp_path / "run.png", "run")
    assert run.read_bytes()[:4] == png
    assert plot_run([{"kind": "train", "step": 1, "reward": 0.2}], tmp_path / "none.png", "x") is None
    sweep = plot_sweep([_row(0, 0, 1e-4, 0.0, 0.1), _row(0, 20, 1e-4, 0.2, 0.3)], ["ood"], tmp_path / "s.png", "s")
    assert sweep.read_bytes()[:4] == png
    assert plot_sweep([], ["id", "ood"], tmp_path / "empty.png", "s") is None
    assert not (tmp_path / "none.png").exists() and not (tmp_path / "empty.png").exists()

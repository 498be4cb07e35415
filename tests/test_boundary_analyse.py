"""The sweep analysis on a synthetic sweep directory (the files a sweep writes, with a known response
surface): paired recoveries, the peak, the window over seeds."""

import json
from pathlib import Path

from raysweep.boundary.analyse import analyse, mean_verdict_shares, summary_text
from raysweep.boundary.report import metric_key, summary_metrics
from raysweep.config import load_config
from raysweep.sweep.plan import lineage, plan_cells
from raysweep.train import trunk as T

N = 128
STEPS = [0, 10, 20, 40, 80]
OOD_SFT = {0: 0.30, 10: 0.45, 20: 0.35, 40: 0.20, 80: 0.10}  # peaks at 10, then SFT erodes it
OOD_GAIN = {0: 0.0, 10: 0.0, 20: 0.10, 40: 0.15, 80: 0.0}  # RL recovers from 20 to 40 only
LOSS = {0: 2.0, 10: 1.0, 20: 0.6, 40: 0.4, 80: 0.3}  # falls all along: it cannot see the peak


def _records(acc, offset=0):
    """N hands; the first round(acc * N) (shifted by ``offset``, wrapping) correct."""
    k = round(acc * N)
    correct = {(offset + i) % N for i in range(k)}
    return [{"cards": [str(i)], "verdicts": ["correct" if i in correct else "wrong_value"]} for i in range(N)]


def _eval(acc_by_rule, loss=None):
    return {rule: {"summary": {"accuracy": acc, "n": N, "ci95": [max(0, acc - 0.08), min(1, acc + 0.08)],
                               "loss": loss, "verdicts": {"correct": round(acc * N), "wrong_value": N - round(acc * N)}},
                   "records": _records(acc)}
            for rule, acc in acc_by_rule.items()}


def synthetic_sweep(tmp_path, *overrides):
    """A sweep directory as `raysweep run` leaves it (config, cells, trunks with checkpoint evaluations,
    finished RL runs with their final evaluation) over the known surface above; no training."""
    cfg = load_config(None, [f"output_dir={tmp_path}", "model.name=tiny", "sft.seeds=[0, 1]",
                             f"sft.checkpoints={STEPS}", "rl.grid={learning_rate: [1e-6]}", "rl.max_steps=3", *overrides])
    sdir = tmp_path / "sweeps" / "s"
    sdir.mkdir(parents=True)
    (sdir / "config.yaml").write_text(cfg.to_yaml())
    cells = {}
    for seed in cfg.sft.seeds:
        tdir = T.trunk_dir(tmp_path, lineage(cfg, plan_cells(cfg)[0])["trunk_id"], seed)
        for step in STEPS:
            cdir = T.checkpoint_dir(tdir, step)
            cdir.mkdir(parents=True)
            ev = _eval({"id": 0.5, "ood": OOD_SFT[step]}, LOSS[step])
            T.write_json_atomic(cdir / "eval.json", ev)
            T.append_result(tdir, {"kind": "checkpoint", "step": step,
                                   "eval": {r: e["summary"] for r, e in ev.items()}})
    for cell in plan_cells(cfg):
        rdir = tmp_path / "rl" / cell.name
        (rdir / "final").mkdir(parents=True)
        (rdir / "evals").mkdir()
        (rdir / "final" / "manifest.json").write_text("{}")
        # RL keeps every hand it had and gains the next ones
        ev = _eval({"id": 0.5, "ood": OOD_SFT[cell.sft_step] + OOD_GAIN[cell.sft_step]})
        T.write_json_atomic(rdir / "evals" / "step-3.json", ev)
        job = {"run_dir": str(rdir), "start_path": lineage(cfg, cell)["checkpoint"]}
        T.write_json_atomic(rdir / "job.json", job)
        cells[cell.name] = str(rdir / "job.json")
    T.write_json_atomic(sdir / "cells.json", cells)
    return cfg, sdir


def test_analysis_finds_the_window_the_peak_and_that_loss_misses_it(tmp_path):
    cfg, sdir = synthetic_sweep(tmp_path)
    a = analyse(sdir)
    assert not a.missing and len(a.cells) == 2 * len(STEPS) * 2
    peak = a.peaks[(0, "ood")]
    assert (peak.step, peak.accuracy, peak.loss_step, peak.loss_picks_peak) == (10, OOD_SFT[10], 80, False)
    key = ((("learning_rate", 1e-6),), "ood")
    w = a.windows[key]
    assert w.steps == (20, 40) and w.lower.bracket == (10, 20) and w.upper.bracket == (40, 80)
    assert a.windows[((("learning_rate", 1e-6),), "id")].empty  # ID unchanged: no window
    rec = a.recovery[key]
    assert abs(rec[40].value - OOD_GAIN[40]) < 1 / N and rec[40].significant_gain and not rec[80].significant_gain
    assert rec[40].n == 2  # two seeds
    c = next(c for c in a.cells if c.cell.sft_step == 40 and c.rule == "ood" and c.cell.seed == 0)
    assert abs(c.ratio[0] - c.diff.value / (OOD_SFT[10] - OOD_SFT[40])) < 1e-9  # relative to the peak
    assert next(c for c in a.cells if c.cell.sft_step == 10 and c.rule == "ood").ratio is None  # at the peak
    text = summary_text(a)
    assert "ood, learning_rate=1e-06: recovers from SFT length 20 to 40" in text
    assert (f"the lowest evaluation loss is at 80 (accuracy {OOD_SFT[80]:.3f} there, below the peak's interval), "
            "so choosing by loss would not find it") in text

    # an unfinished cell is left out, not guessed
    (tmp_path / "rl" / plan_cells(cfg)[0].name / "final" / "manifest.json").unlink()
    assert analyse(sdir).missing == [plan_cells(cfg)[0].name]
    json.dumps([c.row() for c in a.cells])  # rows are plain data


def test_report_writes_the_table_the_summary_and_the_figures(tmp_path):
    from raysweep.boundary.report import write_report

    cfg, sdir = synthetic_sweep(tmp_path)
    files = write_report(sdir, log_to_mlflow=False)
    names = sorted(f.name for f in files)
    assert names == sorted(["boundary.csv", "report.md"] + [f"{kind}_{rule}.png" for kind in ("recovery", "heatmap",
                                                                                           "loss")
                                                            for rule in ("id", "ood")])
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in files if f.suffix == ".png")
    md = (sdir / "report" / "report.md").read_text()
    assert "ood, learning_rate=1e-06: recovers from SFT length 20 to 40 (lower edge between 10 and 20" in md
    assert "| ood | learning_rate=1e-06 | 40 | +0.148 **\\*** |" in md
    # what the OOD answers got wrong along SFT, mean over the two seeds (the training rule has no table)
    assert "## What the answers got wrong along SFT" in md and "| id | 0 |" not in md
    k = round(OOD_SFT[10] * N)
    assert f"| ood | 10 | {k / N:.3f} | 0.000 | 0.000 | {(N - k) / N:.3f} | 0.000 | 2 |" in md
    # and per RL cell, at its SFT checkpoint and after RL
    k40 = round((OOD_SFT[40] + OOD_GAIN[40]) * N)
    assert "## What the answers got wrong after RL (per cell)" in md
    assert f"| seed0-sft40-learning_rate=1e-06 | ood | after | {k40 / N:.3f} | 0.000 | 0.000 | {(N - k40) / N:.3f} |" in md
    # the parent run's summary metrics: the window's edges and the best recovery per setting and rule
    m = summary_metrics(analyse(sdir))
    assert m["boundary/ood/learning_rate:1e-06/window_from"] == 20 and m["boundary/ood/learning_rate:1e-06/window_to"] == 40
    assert m["boundary/ood/learning_rate:1e-06/best_recovery_low"] > 0
    assert m["boundary/id/learning_rate:1e-06/window_from"] == -1  # ID never changes: no window
    assert metric_key("a=b c?") == "a:b c_"
    rows = (sdir / "report" / "boundary.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * len(STEPS) * 2 and rows[0].startswith("cell,sft.seed,rl.sft_step")


def test_report_command_prints_the_findings_and_refuses_a_non_sweep(tmp_path, capsys):
    from raysweep.cli import main

    _, sdir = synthetic_sweep(tmp_path)
    assert main(["report", str(sdir), "--no-mlflow", "--threshold", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "ood, learning_rate=1e-06: recovers from SFT length 20 to 40" in out  # both gains clear 0.05
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a sweep directory" in capsys.readouterr().err


def test_a_sweep_label_captions_the_report_and_leaves_the_sweep_name_alone(tmp_path):
    from raysweep.boundary.report import write_report
    from raysweep.sweep.run import sweep_name

    cfg, sdir = synthetic_sweep(tmp_path)
    captioned = cfg.model_copy(update={"sweep": cfg.sweep.model_copy(update={"label": "ANALOGUE: a test"})})
    (sdir / "config.yaml").write_text(captioned.to_yaml())
    files = write_report(sdir, log_to_mlflow=False)
    assert "# Recovery report: s\n\n**ANALOGUE: a test**\n" in (sdir / "report" / "report.md").read_text()
    assert len([f for f in files if f.suffix == ".png"]) == 6
    assert sweep_name(captioned) == sweep_name(cfg) and cfg.sweep.name is None  # a caption, not an identity


def test_verdict_shares_average_over_the_trunks_that_have_each_length():
    got = mean_verdict_shares([{0: {"correct": 1, "wrong_cards": 3}, 10: {"correct": 2, "wrong_cards": 2}},
                               {0: {"correct": 3, "wrong_value": 1}}])
    assert got[0] == ({"correct": 0.5, "wrong_cards": 0.375, "wrong_value": 0.125}, 2)
    assert got[10] == ({"correct": 0.5, "wrong_cards": 0.5}, 1)


def test_multi_attempt_sweeps_also_report_what_the_first_attempts_got_wrong(tmp_path):
    from raysweep.boundary.report import verdict_lines

    cfg, sdir = synthetic_sweep(tmp_path, "task.attempts=2")
    for seed in cfg.sft.seeds:  # each episode: a first attempt with the wrong cards, then the final verdict
        tdir = T.trunk_dir(tmp_path, lineage(cfg, plan_cells(cfg)[0])["trunk_id"], seed)
        for step in STEPS:
            f = T.checkpoint_dir(tdir, step) / "eval.json"
            ev = json.loads(f.read_text())
            for rec in ev["ood"]["records"]:
                rec["attempts"] = [[{"answer": "", "verdict": "wrong_cards"}, {"answer": "", "verdict": v}]
                                   for v in rec["verdicts"]]
            T.write_json_atomic(f, ev)
    for cell in plan_cells(cfg):  # after RL, every first attempt has the right numbers and a wrong value
        f = tmp_path / "rl" / cell.name / "evals" / "step-3.json"
        ev = json.loads(f.read_text())
        for rec in ev["ood"]["records"]:
            rec["attempts"] = [[{"answer": "", "verdict": "wrong_value"}, {"answer": "", "verdict": v}]
                               for v in rec["verdicts"]]
        T.write_json_atomic(f, ev)
    a = analyse(sdir)
    assert a.first_verdicts[(0, "ood")][10] == {"wrong_cards": N}  # the first attempts, not the last
    assert a.verdicts[(0, "ood")][10]["correct"] == round(OOD_SFT[10] * N)
    text = "\n".join(verdict_lines(a))
    assert "## What the first attempts got wrong along SFT" in text
    first = text.split("## What the first attempts got wrong along SFT")[1]
    assert "| ood | 10 | 0.000 | 0.000 | 1.000 | 0.000 | 0.000 | 2 |" in first
    # after RL, per cell: the last answers, then the first attempts before and after
    cell = plan_cells(cfg)[0].name
    after = text.split("## What the answers got wrong after RL (per cell)")[1]
    assert f"| {cell} | ood | before, attempt 1 | 0.000 | 0.000 | 1.000 | 0.000 | 0.000 |" in after
    assert f"| {cell} | ood | after, attempt 1 | 0.000 | 0.000 | 0.000 | 1.000 | 0.000 |" in after


def test_a_cell_whose_rl_was_too_weak_never_counts_as_not_recovering(tmp_path):
    """RL update / SFT drift under boundary.min_rl_update: a length that does not recover says nothing, so it closes
    no edge of the window and finding 2 leaves it out; the report says so in words and per cell."""
    from raysweep.boundary.findings import one_side_fails, recovers_half
    from raysweep.boundary.report import write_report

    cfg, sdir = synthetic_sweep(tmp_path)
    jobs = json.loads((sdir / "cells.json").read_text())
    ratios = {0: None, 10: 0.5, 20: 0.5, 40: 0.3, 80: 0.04}  # from 80, RL hardly moved the weights
    for cell in plan_cells(cfg):
        rdir = json.loads(open(jobs[cell.name]).read())["run_dir"]
        T.write_json_atomic(Path(rdir) / "update.json", {"ratio": ratios[cell.sft_step], "rl_update": 0.01,
                                                    "sft_drift": 0.1, "angle_change": -0.5, "angle_rl": 1.0})
    a = analyse(sdir)
    key = ((("learning_rate", 1e-6),), "ood")
    w = a.windows[key]
    assert w.steps == (20, 40) and w.lower.bracket == (10, 20)  # 10 was tested and does not recover: closed
    assert not w.upper.closed and w.upper.weak == 80  # 80 was too weak to test: the upper edge stays open
    assert "upper edge at or after 40 (RL from 80 too weak to test)" in w.describe()
    assert a.weak[key] == {80} and a.weak[((("learning_rate", 1e-6),), "id")] == {80}
    c80 = next(c for c in a.cells if c.cell.sft_step == 80 and c.rule == "ood")
    c0 = next(c for c in a.cells if c.cell.sft_step == 0 and c.rule == "ood")
    assert c80.too_weak and c80.row()["rl_update_over_sft_drift"] == 0.04 and not c0.too_weak  # 0: from the base
    assert one_side_fails(a, "ood").verdict == "appeared"  # the lower edge is closed by a tested length
    assert "too weak to test (not counted): learning_rate=1e-06: SFT 80" in one_side_fails(a, "ood").evidence
    assert "from SFT length 80 (learning_rate=1e-06), not counted" in recovers_half(a, "ood").evidence
    write_report(sdir, log_to_mlflow=False)
    md = (sdir / "report" / "report.md").read_text()
    assert "RL update / SFT drift" in md and "| 0.04 (too weak to test) | -0.50° |" in md
    assert "**too weak to test recovery**" in md and "| n/a (from the base) |" in md
    assert "| ood | learning_rate=1e-06 | 80 | +0.000 (too weak to test) |" in md
    # with every cell strong enough, the same 80 closes the edge
    for cell in plan_cells(cfg):
        rdir = json.loads(open(jobs[cell.name]).read())["run_dir"]
        T.write_json_atomic(Path(rdir) / "update.json", {"ratio": 0.5})
    assert analyse(sdir).windows[key].upper.bracket == (40, 80)

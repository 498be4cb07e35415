"""The sweep's live view (pure): a cell's state from its RL run's records, and the rendered table."""

from raysweep.sweep.plan import Cell
from raysweep.sweep.progress import CellStatus, LiveView, cell_status, render
from raysweep.train import trunk as T


def _eval(step, id_acc, ood_acc):
    return {"kind": "eval", "step": step, "eval": {"id": {"accuracy": id_acc, "ci95": [0, 1], "n": 8},
                                                   "ood": {"accuracy": ood_acc, "ci95": [0, 1], "n": 8}}}


def test_cell_status_follows_the_records():
    assert cell_status([], finished=False) == CellStatus("pending")
    running = [_eval(0, 0.25, 0.0), {"kind": "train", "step": 1, "mean_step_seconds": 3.5},
               {"kind": "train", "step": 2, "mean_step_seconds": 3.0}]
    assert cell_status(running, finished=False) == CellStatus("running", 2, 0, (("id", 0.25), ("ood", 0.0)), 3.0)
    # a resumed run may evaluate a step again: the latest evaluation wins
    done = running + [_eval(4, 0.5, 0.125), {"kind": "resume", "from_step": 2}, _eval(4, 0.5, 0.25),
                      {"kind": "done", "max_steps": 4}]
    st = cell_status(done, finished=True)
    assert (st.state, st.step, st.eval_step, st.acc) == ("finished", 4, 4, (("id", 0.5), ("ood", 0.25)))


def test_render_has_a_line_per_cell_with_its_coordinates():
    cells = [Cell(0, 0, (("learning_rate", 1e-4),)), Cell(0, 20, (("learning_rate", 1e-3),))]
    text = render(cells, [CellStatus("finished", 3, 3, (("id", 0.5), ("ood", 0.125))), CellStatus("pending")],
                  max_steps=3, elapsed_s=90)
    head, cols, first, second = text.splitlines()
    assert head == "[sweep] 1.5 min: 1 finished, 0 running, 1 pending"
    assert first.split() == ["finished", "0", "0", "learning_rate=0.0001", "3/3", "id", "0.500", "ood", "0.125",
                             "(step", "3)"]
    assert second.split() == ["pending", "0", "20", "learning_rate=0.001", "0/3", "-"]
    assert cols.split()[:3] == ["state", "seed", "sft"]


def test_multi_attempt_cells_show_attempt_one_beside_the_headline():
    ev = _eval(4, 0.5, 0.25)
    for rule, at in (("id", [0.25, 0.5]), ("ood", [0.125, 0.25])):
        ev["eval"][rule]["accuracy_at_attempt"] = [{"attempt": k + 1, "accuracy": a} for k, a in enumerate(at)]
    st = cell_status([ev], finished=True)
    assert st.first == (("id", 0.25), ("ood", 0.125))
    line = render([Cell(0, 20)], [st], max_steps=4, elapsed_s=0).splitlines()[-1]
    assert "id 0.500 (@1 0.250)  ood 0.250 (@1 0.125) (step 4)" in line
    single = _eval(4, 0.5, 0.25)
    single["eval"]["id"]["accuracy_at_attempt"] = [{"attempt": 1, "accuracy": 0.5}]  # one attempt: no @1
    assert cell_status([single], finished=True).first == ()


def test_live_view_prints_only_changes(tmp_path, capsys):
    rdir = tmp_path / "run"
    rdir.mkdir()
    view = LiveView([Cell(1, 10)], [rdir, ], max_steps=5, interval_s=3600)
    with view:
        pass
    assert "0 finished, 0 running, 1 pending" in capsys.readouterr().err
    view.show()
    assert capsys.readouterr().err == ""  # nothing changed
    T.append_result(rdir, {"kind": "train", "step": 2, "mean_step_seconds": 1.0})
    view.show()
    assert "running" in capsys.readouterr().err

"""A task written as a user's own class (``tests/custom_task.py``, ``task.kind: custom_task:ParityTask``): its
options are validated against its own model, and it runs through ``raysweep eval`` (here) and ``raysweep run``
(the integration test in test_files_sweep.py)."""

import json

import pytest

from raysweep.cli import main
from raysweep.config import ConfigError, load_config
from raysweep.tasks.protocol import task_of

KIND = "task.kind=custom_task:ParityTask"  # tests/ is on sys.path under pytest


def test_options_are_validated_by_the_class_and_errors_name_the_field():
    cfg = load_config(None, [KIND, "task.options={length: 5}", "eval.n=8"])
    task = task_of(cfg.task)
    assert task.options.length == 5 and task.eval_sets == ("id", "ood")
    assert cfg.task.identity()["options"] == {"length": 5, "ood_length": 8, "eval_share": 0.3}
    with pytest.raises(ConfigError, match="task.options.length: Input should be less than or equal to 12"):
        load_config(None, [KIND, "task.options.length=99"])
    with pytest.raises(ConfigError, match="task.options.colour: Extra inputs are not permitted"):
        load_config(None, [KIND, "task.options.colour=red"])
    with pytest.raises(ConfigError, match="task.kind: module 'custom_task' has no 'Nope'"):
        load_config(None, ["task.kind=custom_task:Nope"])
    with pytest.raises(ConfigError, match="task.kind: json:JSONDecoder is not a subclass of raysweep.tasks.protocol"):
        load_config(None, ["task.kind=json:JSONDecoder"])
    with pytest.raises(ConfigError, match="task.kind must be generalpoints"):
        load_config(None, ["task.kind=cards"])
    with pytest.raises(ConfigError, match=r"the 'id' set holds \d+ strings, fewer than eval.n=500"):
        load_config(None, [KIND, "eval.n=500"])


def test_a_user_class_runs_through_raysweep_eval(tmp_path, capsys, tiny_path):
    out = tmp_path / "eval.json"
    code = main(["eval", KIND, "model.name=tiny", "model.device=cpu", "eval.n=8", "eval.batch_size=8",
                 f"output_dir={tmp_path}", "--out", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "correct" in table and "wrong" in table and "malformed" in table
    payload = json.loads(out.read_text())
    assert list(payload["results"]) == ["id", "ood"]
    for name in ("id", "ood"):
        r = payload["results"][name]
        assert r["n"] == 8 and sum(r["verdicts"].values()) == 8 and set(r["verdicts"]) == {"correct", "wrong",
                                                                                            "malformed"}
        recs = payload["records"][name]
        assert len({rec["problem"] for rec in recs}) == 8 and all(set(rec["problem"]) <= {"0", "1"} for rec in recs)
    assert {len(rec["problem"]) for rec in payload["records"]["ood"]} == {8}
    # one set only, by name
    assert main(["eval", KIND, "model.name=tiny", "model.device=cpu", "eval.n=4", "--rule", "ood",
                 f"output_dir={tmp_path}", "--out", str(out)]) == 0
    assert list(json.loads(out.read_text())["results"]) == ["ood"]
    assert main(["eval", KIND, "model.name=tiny", "eval.n=4", "--rule", "far", f"output_dir={tmp_path}"]) == 2

"""The raysweep command line, as a user runs it."""

import json
import subprocess
import sys

import pytest

from raysweep.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "raysweep.cli", *args], capture_output=True, text=True)


def test_task_score_json():
    p = run("task", "score", "--cards", "K,5,3,2", "--rule", "ood", "--answer", "Formula: (13-5)*3*... ", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["verdict"] == "malformed"
    p = run("task", "score", "--cards", "8,3,8,3", "--answer", "8/(3-8/3)=24", "--json", "--reward", "paper")
    d = json.loads(p.stdout)
    assert d["verdict"] == "correct" and d["reward"] == 5 and d["value"] == "24"


def test_task_solve_and_show(capsys):
    assert main(["task", "solve", "--cards", "8,3,8,3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["solutions"] == ["8/(3-8/3)"]
    assert main(["task", "show", "--n", "1", "--rule", "ood", "task.answer_format=json"]) == 0
    out = capsys.readouterr().out
    assert "'11', '12', and '13' respectively" in out and '"formula":' in out


def test_bad_input_is_a_clear_error(capsys):
    assert main(["task", "score", "--cards", "Z,5", "--answer", "1"]) == 2
    assert "unknown card 'Z'" in capsys.readouterr().err
    assert main(["config", "eval.n=-1"]) == 2
    assert "eval.n" in capsys.readouterr().err


def test_config_prints_resolved_yaml(capsys):
    assert main(["config", "eval.n=7"]) == 0
    assert "n: 7" in capsys.readouterr().out
    assert main(["config", "--fields"]) == 0
    assert "task.num_cards" in capsys.readouterr().out


@pytest.mark.integration
def test_eval_command_on_tiny(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "tiny", "--n", "8", "--out", str(out), "eval.max_new_tokens=8",
                 f"output_dir={tmp_path}"]) == 0
    table = capsys.readouterr().out
    assert "ood" in table and "95% CI" in table
    d = json.loads(out.read_text())
    assert set(d["results"]) == {"id", "ood"} and d["results"]["ood"]["n"] == 8
    assert d["config"]["model"]["name"] == "tiny" and len(d["records"]["id"]) == 8


def test_rl_plan_only_writes_the_job_and_a_missing_start_is_a_clear_error(tmp_path, capsys):
    assert main(["rl", "model.name=tiny", f"output_dir={tmp_path}"]) == 2
    assert "rl.sft_step" in capsys.readouterr().err  # names how to give the start
    assert main(["rl", "model.name=tiny", "rl.checkpoint=tiny", f"output_dir={tmp_path}", "--plan-only"]) == 0
    job_path = capsys.readouterr().out.strip().splitlines()[-1]
    job = json.loads(open(job_path).read())
    assert job["start_spec"] == "tiny" and job["run_dir"].startswith(str(tmp_path / "rl"))
    assert job["config"]["rl"]["algorithm"] == "grpo"

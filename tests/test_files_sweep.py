"""Bring your own task, end to end on tiny: the ``files`` example (jobs/example-files) through ``raysweep eval``
(its sweep, a trunk and a 1 x 2 RL grid, is the one test_job_submit.py submits to a two-node cluster), and a
user's own task class (tests/custom_task.py) through ``raysweep run``, whose report holds both evaluation sets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import report_has_sets

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SMALL = ["sft.checkpoints=[0, 6]", "sweep.rl_from=[6]", "rl.max_steps=1", "eval.n=8", "eval.train_n=8", "sft.cpus_per_worker=1",
         "rl.cpus_per_worker=1"]


def _raysweep(args, cwd, env=None, timeout=600):
    proc = subprocess.run([sys.executable, "-m", "raysweep.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return proc


@pytest.mark.integration
def test_files_example_through_raysweep_eval(tmp_path):
    """The example's sets through `raysweep eval` (its sweep, a trunk and a 1 x 2 grid, runs in
    test_job_submit.py, submitted to a two-node cluster)."""
    ev = _raysweep(["eval", "jobs/example-files/sweep.yaml", f"output_dir={tmp_path / 'out'}", "eval.n=8",
                    "--out", str(tmp_path / "eval.json")], ROOT)
    assert "malformed" in ev.stdout
    payload = json.loads((tmp_path / "eval.json").read_text())
    assert list(payload["results"]) == ["id", "ood"] and all(r["n"] == 8 for r in payload["results"].values())


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_a_user_task_class_runs_through_raysweep_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)}
    args = ["run", "model.name=tiny", "task.kind=custom_task:ParityTask", "task.options={length: 6, ood_length: 8}",
            "sft.learning_rate=3e-3", "sft.warmup_steps=0", "sft.per_device_batch_size=16", "sft.num_examples=64",
            "sft.deepspeed.stage=0", "rl.deepspeed.stage=0", "rl.eval_every=0", "rl.batch_size=4",
            "rl.num_generations=4", "rl.num_prompts=16", "sweep.name=parity", "output_dir=out", *SMALL]
    _raysweep(args, tmp_path, env)
    report_has_sets(tmp_path / "out" / "sweeps" / "parity")

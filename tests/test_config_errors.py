"""Malformed sweep configs through the real CLI entry (``raysweep run BAD.yaml``): each fails before
anything trains or Ray starts, with exit status 2, exactly one ``raysweep: error:`` message that names the
offending field, and no traceback; once more in a subprocess, as a terminal sees it."""

import os
import subprocess
import sys
import time

import pytest

from raysweep.cli import main

UNREACHABLE_S3 = "s3://nobucket/x?endpoint_override=127.0.0.1:1&scheme=http"

# (YAML text, or bytes; "{out}" is a fresh directory) -> what the error must name
CASES = [
    pytest.param("sft: {learning_rate: fast}\n", "sft.learning_rate", id="string-for-a-number"),
    pytest.param("eval: {n: [1, 2]}\n", "eval.n", id="list-for-an-int"),
    pytest.param("sft: 5\n", "sft", id="value-for-a-section"),
    pytest.param("bogus: 1\n", "bogus: unknown key", id="unknown-top-level-key"),
    pytest.param("rl: {learnin_rate: 1.0e-6}\n", "rl.learnin_rate: unknown key", id="unknown-nested-key"),
    pytest.param("sft: {deepspeed: {stag: 2}}\n", "sft.deepspeed.stag: unknown key", id="unknown-deep-key"),
    pytest.param("rl: {max_steps: -1}\n", "rl.max_steps", id="negative-rl-steps"),
    pytest.param("sft: {checkpoints: [0, -5]}\n", "sft.checkpoints", id="negative-sft-length"),
    pytest.param("sft: {checkpoints: [40, 20]}\n", "sft.checkpoints: must be increasing", id="unsorted-lengths"),
    pytest.param("sft: {checkpoints: [0, 20, 20]}\n", "sft.checkpoints: must be increasing", id="repeated-lengths"),
    pytest.param("sft: {checkpoints: []}\n", "sft.checkpoints", id="no-lengths"),
    pytest.param("rl: {grid: {learning_rate: []}}\n", "rl.grid.learning_rate", id="empty-grid"),
    pytest.param("rl: {grid: {learning_rate: 1.0e-6}}\n", "rl.grid.learning_rate", id="grid-not-a-list"),
    pytest.param("rl: {grid: {learning_rate: [1.0e-6, 0]}}\n", "rl.grid.learning_rate[1]", id="bad-grid-value"),
    pytest.param("rl: {grid: {sft_step: [30]}}\n", "rl.grid.sft_step", id="grid-names-an-sft-length"),
    pytest.param("sft: {checkpoints: [0, 20]}\nrl: {sft_step: 30}\n", "rl.sft_step", id="missing-sft-length"),
    pytest.param("rl: {batch_size: 3, num_generations: 2, num_workers: 4}\n", "rl.batch_size",
                 id="batch-does-not-split"),
    pytest.param("task: {eval_rules: [id, mirror]}\n", "task.eval_rules", id="unknown-rule"),
    pytest.param("rl: {rules: [ood]}\n", "rl.rules: 'ood' is an evaluated rule", id="rl-rule-evaluated"),
    pytest.param("rl: {rules: [mirror]}\n", "rl.rules: unknown rule 'mirror'", id="rl-rule-unknown"),
    pytest.param("task: {rules: {same: {J: 10, Q: 10, K: 10}}}\nrl: {rules: [same]}\n", "rl.rules: 'same' counts every rank",
                 id="rl-rule-nothing-to-read"),
    pytest.param("rl: {face_values: [2, 9]}\n", "rl.face_values shapes the 'varied' rules", id="rl-faces-unused"),
    pytest.param("rl: {rules: [varied], face_values: [9, 2]}\n", "rl.face_values", id="rl-faces-reversed"),
    pytest.param("boundary: {rule: mirror}\n", "boundary.rule", id="boundary-rule-not-evaluated"),
    pytest.param("sweep: {max_concurrent_trials: 0}\n", "sweep.max_concurrent_trials", id="zero-concurrency"),
    pytest.param("- sft\n- rl\n", "the top level must be a mapping", id="not-a-mapping"),
    pytest.param("sft: {checkpoints: [0, 20]\nrl: {max_steps: 3}\n", "is not valid YAML (line", id="invalid-yaml"),
    pytest.param(b"\xff\xfe\x00s\x00f\x00t", "is not UTF-8 text", id="not-text"),
    pytest.param(f"output_dir: '{{out}}'\nsweep: {{storage: '{UNREACHABLE_S3}'}}\n", "sweep.storage: cannot reach",
                 id="unreachable-s3-storage"),
    pytest.param("output_dir: '{out}'\nsweep: {storage: '{out}/a-file/sweeps'}\n", "sweep.storage: cannot write",
                 id="unwritable-storage-dir"),
    pytest.param("output_dir: '{out}'\nsweep: {storage: 'file://{out}/a-file/sweeps'}\n", "sweep.storage: cannot",
                 id="unwritable-storage-uri"),
]


@pytest.fixture(autouse=True)
def no_training(monkeypatch, tmp_path):
    """A tripwire, not a mock of what is tested: if a config got past validation, an MLflow run, training
    or Ray would start here, and the test fails saying so instead (in a scratch working directory)."""
    import ray

    import raysweep.tracking
    import raysweep.train.launch
    import raysweep.train.sft

    def tripwire(*args, **kwargs):
        raise AssertionError("MLflow, training or Ray started before the config was refused")

    monkeypatch.chdir(tmp_path)  # the default output_dir ("outputs") lands here, whatever happens
    monkeypatch.setattr(raysweep.tracking, "start_run", tripwire)
    monkeypatch.setattr(raysweep.train.sft, "run_sft", tripwire)
    monkeypatch.setattr(raysweep.train.launch, "ensure_ray", tripwire)
    monkeypatch.setattr(raysweep.train.launch, "run_on_workers", tripwire)
    monkeypatch.setattr(ray, "init", tripwire)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def write_config(tmp_path, text) -> str:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a-file").write_text("a file where a directory would go")
    path = tmp_path / "bad.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text.replace("{out}", str(out)))
    return str(path)


def assert_one_clear_error(code: int, err: str, names: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    assert err.count("raysweep: error:") == 1, err
    message = err[err.index("raysweep: error:"):]
    assert names in message, message


@pytest.mark.parametrize("text,names", CASES)
def test_a_malformed_sweep_config_fails_before_training_naming_the_field(tmp_path, capsys, text, names):
    path = write_config(tmp_path, text)
    t0 = time.time()
    code = main(["run", path])
    assert_one_clear_error(code, capsys.readouterr().err, names)
    assert time.time() - t0 < 60  # a hang guard, not a benchmark: unreachable storage answers in seconds
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "out" / "sweeps").exists()  # nothing written


def test_overrides_are_held_to_the_same_rules(tmp_path, capsys):
    path = write_config(tmp_path, "sft: {checkpoints: [0, 20]}\n")
    assert_one_clear_error(main(["run", path, "sft.checkpoints=[20, 0]"]), capsys.readouterr().err,
                           "sft.checkpoints: must be increasing, without repeats: write [0, 20]")
    assert_one_clear_error(main(["run", path, "rl.sft_step=10"]), capsys.readouterr().err, "rl.sft_step: 10")


def test_a_terminal_sees_one_line_of_error_and_no_traceback(tmp_path):
    path = write_config(tmp_path, "sft: {checkpoints: [40, 20]}\n")
    env = {**os.environ, "RAYSWEEP_HOME": os.environ.get("RAYSWEEP_HOME", str(tmp_path / "home"))}
    p = subprocess.run([sys.executable, "-m", "raysweep.cli", "run", path], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=120)
    assert_one_clear_error(p.returncode, p.stderr, "sft.checkpoints: must be increasing")
    assert p.stdout == "" and not (tmp_path / "outputs").exists()  # nothing started, nothing written

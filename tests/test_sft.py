"""SFT trunks: real Ray Train workers, real DeepSpeed ZeRO, real TRL SFTTrainer, real MLflow (sqlite)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import kill_tree

from raysweep.config import ConfigError, load_config
from raysweep.train import trunk as T
from raysweep.train.deepspeed import deepspeed_config
from raysweep.train.sft import plan_jobs


def tiny_overrides(tmp_path, *extra):
    return ["model.name=tiny", "eval.n=8", "eval.max_new_tokens=8", "sft.per_device_batch_size=4",
            "sft.num_examples=64", "sft.learning_rate=1e-3", "sft.warmup_steps=0", "sft.num_workers=2",
            f"output_dir={tmp_path / 'out'}", *extra]


# ------------------------------------------------------------------------------------ fast (pure)


def test_decaying_schedule_is_refused_with_the_reason():
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["sft.lr_scheduler=cosine"])
    msg = str(exc.value)
    assert "sft.lr_scheduler" in msg and "k-step run" in msg and "constant_with_warmup" in msg
    assert load_config(None, ["sft.lr_scheduler=constant"]).sft.lr_scheduler == "constant"


def test_checkpoints_must_be_increasing_and_are_validated():
    assert load_config(None, ["sft.checkpoints=[0, 10, 40]"]).sft.checkpoints == (0, 10, 40)
    for bad in ("[40, 0, 10]", "[0, 10, 10, 40]"):  # refused, not silently sorted: the YAML is the record
        with pytest.raises(ConfigError, match=r"sft.checkpoints: must be increasing.*write \[0, 10, 40\]"):
            load_config(None, [f"sft.checkpoints={bad}"])
    with pytest.raises(ConfigError, match="sft.checkpoints"):
        load_config(None, ["sft.checkpoints=[-1, 4]"])
    with pytest.raises(ConfigError, match="offload_params"):
        load_config(None, ["sft.deepspeed.stage=2", "sft.deepspeed.offload_params=true"])


def test_plan_one_job_per_seed_and_a_stable_trunk_id(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path, "sft.seeds=[0, 1]"))
    jobs = plan_jobs(cfg, "/models/tiny")
    assert [j["seed"] for j in jobs] == [0, 1] and jobs[0]["trunk_id"] == jobs[1]["trunk_id"]
    assert jobs[0]["trunk_dir"] != jobs[1]["trunk_dir"]
    # more SFT lengths extend the same trunk; a different learning rate is another trunk
    longer = load_config(None, tiny_overrides(tmp_path, "sft.checkpoints=[0, 10, 20, 40, 80, 160]"))
    other_lr = load_config(None, tiny_overrides(tmp_path, "sft.learning_rate=2e-3"))
    assert plan_jobs(longer, "x")[0]["trunk_id"] == jobs[0]["trunk_id"]
    assert plan_jobs(other_lr, "x")[0]["trunk_id"] != jobs[0]["trunk_id"]


def test_workers_get_absolute_paths_and_tracking_uri(tmp_path, monkeypatch):
    # Ray runs workers in its own directory: a relative output_dir must not reach them
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(None, ["model.name=tiny", "output_dir=outputs"])
    (job,) = plan_jobs(cfg, "x")
    assert job["config"]["output_dir"] == str(tmp_path / "outputs")
    assert job["config"]["tracking"]["uri"] == f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    assert job["trunk_dir"].startswith(str(tmp_path / "outputs" / "trunks"))
    # the driver's choice of server travels too (a stand-in server here: the driver checks that it answers)
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        assert plan_jobs(cfg, "x")[0]["config"]["tracking"]["uri"] == uri
    finally:
        server.shutdown()


def test_deepspeed_config_defers_to_the_trainer():
    from raysweep.train.workers_config import DeepSpeedConfig

    ds = deepspeed_config(DeepSpeedConfig(stage=3, offload_optimizer=True, offload_params=True))
    assert ds["bf16"]["enabled"] == "auto" and ds["train_micro_batch_size_per_gpu"] == "auto"
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"


# ------------------------------------------------------------------------------------ integration


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


@pytest.mark.integration
@pytest.mark.parametrize("stage", [3])  # ZeRO-2 on two Ray workers: test_rl.py (grpo-2)
def test_trunk_on_two_ray_workers_with_zero(stage, tmp_path, monkeypatch):
    import mlflow
    import torch
    from mlflow.tracking import MlflowClient
    from transformers import AutoModelForCausalLM

    from raysweep.train.sft import run_sft

    monkeypatch.chdir(tmp_path)  # a relative output_dir, as users write it: workers run elsewhere
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(None, tiny_overrides(tmp_path, "sft.checkpoints=[0, 2, 4]", f"sft.deepspeed.stage={stage}",
                                           "output_dir=out"))
    (tdir,) = run_sft(cfg)
    assert tdir.is_relative_to(tmp_path / "out") and (tmp_path / "out" / "mlflow.db").is_file()

    # checkpoints exist exactly at the requested steps, load, and carry their lineage
    ckpts = sorted(p.name for p in (tdir / "checkpoints").iterdir())
    assert ckpts == ["step-0", "step-2", "step-4"]
    for step in (0, 2, 4):
        m = T.read_manifest(T.checkpoint_dir(tdir, step))
        assert m["step"] == step and m["seed"] == 0 and m["base_model"] == "tiny" and m["data_hash"]
        AutoModelForCausalLM.from_pretrained(T.checkpoint_dir(tdir, step))
    w0, w4 = _weights(T.checkpoint_dir(tdir, 0)), _weights(T.checkpoint_dir(tdir, 4))
    changed = [k for k in w0 if not torch.equal(w0[k], w4[k])]
    assert len(changed) >= len(w0) - 1, "SFT should move (nearly) every tensor"
    # plausible training: the loss on expert answers falls
    results = list(T.read_results(tdir))
    evals = {r["step"]: r["eval"] for r in results if r["kind"] == "checkpoint"}
    assert sorted(evals) == [0, 2, 4]
    assert evals[4]["id"]["loss"] < evals[0]["id"]["loss"] < 10
    losses = [r["loss"] for r in results if r["kind"] == "train"]
    assert len(losses) == 4 and all(0 < x < 10 for x in losses) and losses[-1] < losses[0]

    # the trunk's MLflow run, in the real (sqlite) store
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    client = MlflowClient()
    run = client.get_run((tdir / "mlflow_run_id").read_text().strip())
    assert run.data.params["sft.deepspeed.stage"] == str(stage) and run.data.tags["raysweep.kind"] == "sft"
    hist = client.get_metric_history(run.info.run_id, "eval/ood/accuracy")
    assert sorted(m.step for m in hist) == [0, 2, 4]
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 4
    assert "config.yaml" in [a.path for a in client.list_artifacts(run.info.run_id)]

    # a rerun finds everything finished and trains nothing
    assert run_sft(cfg) == [tdir]
    assert list(T.read_results(tdir)) == results


@pytest.mark.integration
def test_kill_and_resume_redoes_nothing(tmp_path):
    """Kill the trunk after SFT length 4 is sealed, damage the newest trainer state (truncated weights):
    the rerun names the damaged file, resumes from the state before it (length 2), redoes no sealed
    checkpoint and no finished evaluation."""
    overrides = tiny_overrides(tmp_path, "sft.checkpoints=[0, 2, 4, 30]", "sft.deepspeed.stage=2",
                               "tracking.enabled=false")
    cmd = [sys.executable, "-m", "raysweep.cli", "sft", *overrides]
    cfg = load_config(None, overrides)
    tdir = Path(plan_jobs(cfg, "x")[0]["trunk_dir"])
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 400
        while not (T.checkpoint_dir(tdir, 4) / "manifest.json").is_file():
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "the checkpoint at 4 never appeared"
            time.sleep(0.2)
        kill_tree(proc)  # the driver, the local Ray cluster it started, and the training workers
    finally:
        kill_tree(proc)
    before = list(T.read_results(tdir))
    assert 30 not in T.finished_steps(tdir), "killed too late to test resume"
    trained_before = max(r["step"] for r in before if r["kind"] == "train")
    states = sorted(p.name for p in (tdir / "trainer").glob("checkpoint-*"))
    assert states == ["checkpoint-2", "checkpoint-4"], states  # the trainer keeps two states
    weights = tdir / "trainer" / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a disk that lost half a file

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert f"skipping damaged trainer checkpoint checkpoint-4: {weights}: truncated" in done.stderr
    results = list(T.read_results(tdir))
    assert results[: len(before)] == before  # nothing rewritten
    after = results[len(before):]
    resume = [r for r in after if r["kind"] == "resume"]
    assert len(resume) == 1 and resume[0]["from_step"] == 2 and resume[0]["todo"] == [30]
    # finished evaluations are not redone; training restarts at the last good state, not at 0
    ckpt_steps = [r["step"] for r in results if r["kind"] == "checkpoint"]
    assert sorted(ckpt_steps) == [0, 2, 4, 30] and len(ckpt_steps) == 4
    resumed_train = [r["step"] for r in after if r["kind"] == "train"]
    assert resumed_train[0] == 3 and resumed_train[-1] == 30
    assert trained_before >= 4
    assert sorted(T.finished_steps(tdir)) == [0, 2, 4, 30]


def test_damaged_files_are_named(tmp_path):
    import torch
    from safetensors.torch import save_file

    good = tmp_path / "good"
    good.mkdir()
    save_file({"w": torch.ones(4, 4)}, str(good / "model.safetensors"))
    torch.save({"step": 1}, good / "optimizer.pt")
    (good / "trainer_state.json").write_text('{"global_step": 1}')
    assert T.checkpoint_problem(good) is None
    for name, damage in (("model.safetensors", lambda b: b[:-10]), ("model.safetensors", lambda b: b[:5]),
                         ("optimizer.pt", lambda b: b[: len(b) // 2]), ("trainer_state.json", lambda b: b[:-2])):
        bad = tmp_path / f"bad-{name}-{len(list(tmp_path.iterdir()))}"
        bad.mkdir()
        for f in good.iterdir():
            data = f.read_bytes()
            (bad / f.name).write_bytes(damage(data) if f.name == name else data)
        problem = T.checkpoint_problem(bad)
        assert problem is not None and problem.startswith(str(bad / name)), problem


def test_a_max_length_that_would_cut_answers_is_refused(tiny_path):
    from transformers import AutoTokenizer

    from raysweep.tasks.datasets import sft_dataset
    from raysweep.tasks.generalpoints import TaskConfig
    from raysweep.train.sft_worker import _check_lengths

    tok = AutoTokenizer.from_pretrained(tiny_path)
    ds = sft_dataset(TaskConfig(), 8, 0)
    _check_lengths(tok, ds, 1024)
    with pytest.raises(ValueError, match="sft.max_length=300 would truncate"):
        _check_lengths(tok, ds, 300)

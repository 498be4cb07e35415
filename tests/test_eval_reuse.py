"""Reuse of an evaluation by identical weights (raysweep.eval_reuse): the store, and the trunks that share a base."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raysweep.config import load_config
from raysweep.eval_reuse import EvalStore, entry_name, files_digest
from raysweep.evaluate import summarise
from raysweep.train import trunk as T


def _result(rule, verdicts):
    records = [{"problem": [i], "verdicts": v} for i, v in enumerate(verdicts)]
    r = summarise(rule, [["x"] * len(v) for v in verdicts], verdicts, problems=[(i,) for i in range(len(verdicts))])
    r.records = records
    return r


def test_files_digest_follows_the_model_files_not_the_bookkeeping(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "model.safetensors").write_bytes(b"weights")
    (a / "config.json").write_text("{}")
    d = files_digest(a)
    (a / "manifest.json").write_text('{"created": 1}')
    (a / "eval.json").write_text("{}")
    assert files_digest(a) == d  # what a trunk writes beside the weights changes nothing
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert files_digest(b) == d  # the same files elsewhere: the same weights
    (b / "model.safetensors").write_bytes(b"weightz")
    assert files_digest(b) != d
    (a / "tokenizer.json").write_text("{}")
    assert files_digest(a) != d  # a file more (or another tokenizer) is another model


def test_store_returns_only_what_was_stored_for_these_weights_key_and_rule(tmp_path):
    store = EvalStore(tmp_path, "key1")
    ood = _result("ood", [["correct"], ["wrong_value"], ["malformed"]])
    store.store("w1", {"ood": ood}, "somewhere/step-0")
    got = store.lookup("w1", ["id", "ood"])
    assert list(got) == ["ood"]  # id was never stored
    assert got["ood"].summary() == ood.summary() and got["ood"].records == ood.records
    assert got["ood"].ci95 == ood.ci95 and isinstance(got["ood"].ci95, tuple)
    assert store.lookup("w2", ["ood"]) == {}  # other weights
    assert EvalStore(tmp_path, "key2").lookup("w1", ["ood"]) == {}  # other task or eval settings
    # a half-written entry (a killed writer) is evaluated again, not read
    path = tmp_path / "evals" / entry_name("w1", store.key, "ood")
    path.write_text(path.read_text()[:40])
    assert store.lookup("w1", ["ood"]) == {}


def test_the_key_names_the_evaluation_code(tmp_path, monkeypatch):
    from raysweep import eval_reuse

    before = EvalStore(tmp_path, "k").key
    monkeypatch.setattr(eval_reuse, "code_digest", lambda: "another-verifier")
    assert EvalStore(tmp_path, "k").key != before  # a changed verifier never reads an old result


@pytest.mark.integration
def test_seeds_sharing_a_base_evaluate_it_once(tmp_path):
    """Two trunks (seeds 0 and 1) from the same base, run by the SFT worker as plain processes: the second reads
    the base's ID and OOD evaluation from the first, and evaluates only its own SFT problems."""
    from raysweep import models
    from raysweep.train.sft import plan_jobs, write_job

    cfg = load_config(None, ["model.name=tiny", "eval.n=8", "eval.max_new_tokens=8", "eval.train_n=4",
                             "sft.seeds=[0, 1]", "sft.checkpoints=[0]", "sft.deepspeed.stage=0",
                             "tracking.enabled=false", f"output_dir={tmp_path / 'out'}"])
    tdirs = []
    for job in plan_jobs(cfg, str(models.resolve("tiny"))):
        done = subprocess.run([sys.executable, "-m", "raysweep.train.sft_worker", "--job", str(write_job(job, cfg))],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        tdirs.append(Path(job["trunk_dir"]))
    (r0,), (r1,) = ([r for r in T.read_results(t) if r["kind"] == "checkpoint"] for t in tdirs)
    assert r0["reused"] == [] and r1["reused"] == ["id", "ood"]
    e0, e1 = (json.loads((T.checkpoint_dir(t, 0) / "eval.json").read_text()) for t in tdirs)
    assert set(e0) == set(e1) == {"id", "ood", "id-train"}
    for rule in ("id", "ood"):
        assert e1[rule] == e0[rule] and len(e1[rule]["records"]) == 8
    # each trunk's own SFT problems are its own: evaluated, not read
    assert e0["id-train"]["records"] != e1["id-train"]["records"]
    assert T.read_manifest(T.checkpoint_dir(tdirs[1], 0))["eval_reused"] == ["id", "ood"]
    assert len(list((tmp_path / "out" / "evals").glob("*.json"))) == 2

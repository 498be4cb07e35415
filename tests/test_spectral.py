"""`raysweep spectral` on tiny checkpoints: a target made from the ref by known rotations and scalings,
compared, edited and evaluated end to end (local executor, sqlite MLflow). The Ray-task path and the sweep
mode run in the sweep integration test (tests/test_sweep_run.py)."""

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from raysweep.cli import main
from raysweep.config import load_config
from raysweep.spectral.weights import CheckpointError, select, tensor_files

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")


def _tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name, f in tensor_files(ckpt).items():
        with safe_open(str(f), framework="pt") as st:
            out[name] = st.get_tensor(name)
    return out


@pytest.fixture(scope="module")
def target(tiny_path, tmp_path_factory) -> Path:
    """tiny with every attention matrix turned by an orthogonal R (W -> R W: same singular values, rotated
    left vectors) and every MLP matrix turned and scaled by 1.1 (values change too)."""
    from transformers import AutoModelForCausalLM

    from raysweep.models import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            module = name.rsplit(".", 2)[-2]
            if p.ndim == 2 and ".layers." in name and module.endswith("_proj"):
                a = torch.randn(p.shape[0], p.shape[0], generator=g, dtype=torch.float64)
                R = torch.linalg.matrix_exp(0.05 * (a - a.T))
                w = R @ p.double()
                p.copy_((w if module in ATTN else 1.1 * w).float())
    out = tmp_path_factory.mktemp("target") / "rotated"
    model.save_pretrained(out)
    load_tokenizer(tiny_path).save_pretrained(out)
    return out


def _cfg(tmp_path, *extra):
    return load_config(None, ["model.name=tiny", "eval.n=8", "spectral.executor=local", f"output_dir={tmp_path}",
                              "tracking.experiment=spectral-test", *extra])


def test_compare_finds_rotation_without_value_change(tiny_path, target, tmp_path):
    from raysweep.spectral.report import spectral_pairs

    s = spectral_pairs(str(tiny_path), [str(target)], _cfg(tmp_path), out=tmp_path / "spec")
    with open(tmp_path / "spec" / "by_module.csv") as f:
        by_module = {r["module"]: r for r in csv.DictReader(f)}
    for m in ATTN:
        assert float(by_module[m]["sv_rel_change"]) < 1e-5  # a rotation keeps the singular values
        assert float(by_module[m]["angle_u_mean.top0.1"]) > 1.0  # left vectors turned
        assert float(by_module[m]["angle_v_mean.top0.1"]) < 1e-2  # right ones did not
    for m in ("gate_proj", "up_proj", "down_proj"):
        assert abs(float(by_module[m]["sv_rel_change"]) - 0.1) < 1e-5
    assert len(s["pairs"]) == 1 and (tmp_path / "spec" / "layers_pair.png").is_file()
    # cached: a rerun computes nothing
    again = spectral_pairs(str(tiny_path), [str(target)], _cfg(tmp_path), out=tmp_path / "spec")
    assert again["pairs"][0]["angle_mean.top0.1"] == s["pairs"][0]["angle_mean.top0.1"]


def test_edits_rebuild_what_they_promise_and_are_evaluated(tiny_path, target, tmp_path):
    from mlflow.tracking import MlflowClient

    from raysweep.spectral.edits import run_edits
    from raysweep.tracking import tracking_uri

    cfg = _cfg(tmp_path, "spectral.edits=[directions, values, both, topk:1]")
    rows = run_edits(str(tiny_path), str(target), cfg, out=tmp_path / "edits")
    ref, tgt = _tensors(tiny_path), _tensors(target)
    out = {e: _tensors(tmp_path / "edits" / e.replace(":", "-")) for e in ("directions", "values", "both", "topk:1")}
    touched = {m.name: m.module for m in select(tiny_path, cfg.spectral)}
    assert len(touched) == 14
    for name, module in touched.items():
        scale = 1.0 if module in ATTN else 1.1
        assert torch.allclose(out["both"][name], ref[name], atol=1e-5)  # restoring everything is the ref
        assert torch.allclose(out["directions"][name], scale * ref[name], atol=1e-5)  # ref vectors, target values
        assert torch.allclose(out["values"][name], tgt[name] / scale, atol=1e-5)  # target vectors, ref values
        assert torch.allclose(out["topk:1"][name], out["directions"][name], atol=1e-5)
    for name in set(ref) - set(touched):  # everything else is the target's
        assert torch.equal(out["both"][name], tgt[name])
    checkpoints = {r["checkpoint"] for r in rows}
    assert checkpoints == {"ref", "target", "directions", "values", "both", "topk:1"}
    assert all(r["n"] == 8 and 0 <= r["accuracy"] <= 1 and r["loss"] > 0 for r in rows)
    both = {r["rule"]: r for r in rows if r["checkpoint"] == "both"}
    assert both["ood"]["loss"] != pytest.approx(next(r["loss"] for r in rows if r["checkpoint"] == "target"
                                                     and r["rule"] == "ood"))
    man = json.loads((tmp_path / "edits" / "directions" / "manifest.json").read_text())
    assert man["kind"] == "spectral-edit" and man["matrices"] == 14 and set(man["eval"]) == {"id", "ood"}
    client = MlflowClient(tracking_uri(cfg.tracking, cfg.output_dir))
    exp = client.get_experiment_by_name("spectral-test")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["raysweep.kind"] == "spectral-edit"
    assert "directions.ood.accuracy" in runs[0].data.metrics
    # a rerun builds and evaluates nothing, and logs to the same MLflow run
    stamp = (tmp_path / "edits" / "values" / "model.safetensors").stat().st_mtime_ns
    run_edits(str(tiny_path), str(target), cfg, out=tmp_path / "edits")
    assert (tmp_path / "edits" / "values" / "model.safetensors").stat().st_mtime_ns == stamp
    assert len(client.search_runs([exp.experiment_id])) == 1


def test_edit_scope_limits_the_matrices(tiny_path, target, tmp_path):
    from raysweep.spectral.edits import run_edits

    cfg = _cfg(tmp_path, "spectral.edits=[both]", "spectral.edit_modules=[q_proj]", "spectral.edit_layers=[1]",
               "tracking.enabled=false")
    run_edits(str(tiny_path), str(target), cfg, out=tmp_path / "scoped")
    ref, tgt, out = _tensors(tiny_path), _tensors(target), _tensors(tmp_path / "scoped" / "both")
    changed = [n for n in ref if not torch.equal(out[n], tgt[n])]
    assert changed == ["model.layers.1.self_attn.q_proj.weight"]
    assert torch.allclose(out[changed[0]], ref[changed[0]], atol=1e-5)


def test_damaged_checkpoints_are_named(tmp_path, tiny_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not loaded")
    with pytest.raises(CheckpointError, match="pickled weights are not loaded"):
        tensor_files(pickled)
    cut = tmp_path / "cut"
    cut.mkdir()
    data = (Path(tiny_path) / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(cut / "model.safetensors")):
        select(cut, load_config(None, []).spectral)


def test_cli_errors_exit_2(capsys, tiny_path, tmp_path):
    assert main(["spectral"]) == 2
    assert "give --ref and --target" in capsys.readouterr().err
    assert main(["spectral", "edit", "--ref", str(tiny_path), "--target", "a", "--target", "b"]) == 2
    assert "exactly one --target" in capsys.readouterr().err
    assert main(["spectral", "--ref", str(tiny_path), "--target", str(tmp_path), "spectral.executor=local",
                 "--no-mlflow"]) == 2
    assert "no model.safetensors" in capsys.readouterr().err
    assert main(["spectral", "--sweep", str(tmp_path)]) == 2
    assert "not a sweep directory" in capsys.readouterr().err
    assert main(["spectral", "frobnicate"]) == 2
    assert main(["spectral", "--ref", "x", "--target", "y", "spectral.fractions=[2]"]) == 2
    assert "spectral.fractions" in capsys.readouterr().err


def test_trunk_correlations():
    from raysweep.spectral.report import trunk_correlations

    def pt(step, angle, sv):
        return {"sft_step": step, "angle_mean.top0.1": angle, "sv_rel_change": sv, "w_rel_change": 2 * sv}

    points = [pt(0, 0.0, 0.0), pt(10, 5.0, 0.01), pt(20, 8.0, 0.012), pt(40, 12.0, 0.015), pt(80, 15.0, 0.02)]
    steps = [{"sft_step": 20, "prev_step": 10, "angle_mean.top0.1": 4.0},
             {"sft_step": 40, "prev_step": 20, "angle_mean.top0.1": 5.0},
             {"sft_step": 80, "prev_step": 40, "angle_mean.top0.1": 4.0}]
    ood = {0: 0.10, 10: 0.30, 20: 0.25, 40: 0.15, 80: 0.05}  # peaks early, then falls
    loss = {0: 2.0, 10: 1.0, 20: 0.8, 40: 0.6, 80: 0.5}  # keeps falling: the loss cannot see the peak
    c = trunk_correlations(points, steps, ood, loss, 0.1)
    assert c["checkpoints"] == 5 and c["peak_step"] == 10 and c["last_angle"] == 15.0
    assert c["spearman_angle_vs_sv"] == pytest.approx(1.0)
    assert c["spearman_angle_vs_acc"] == pytest.approx(-0.4)  # ranks 1..5 vs 2,5,4,3,1: 1 - 6*28/120
    # rotation rate per step: 0.5, 0.4, 0.25, 0.1 at 10, 20, 40, 80: ordered like OOD after the peak
    assert c["rate"] == {10: 0.5, 20: 0.4, 40: 0.25, 80: 0.1}
    assert c["spearman_rate_vs_acc"] == pytest.approx(1.0) and c["rate_pick"] == 10
    assert c["spearman_neg_loss_vs_acc"] == pytest.approx(-1.0) and c["loss_pick"] == 80
    # against the OOD expert-answer loss (a continuous OOD measure where accuracy is flat)
    ood_loss = {0: 1.4, 10: 0.5, 20: 0.45, 40: 0.5, 80: 0.55}
    c = trunk_correlations(points, steps, ood, loss, 0.1, ood_loss)
    assert c["rule_loss_best_step"] == 20
    assert c["spearman_angle_vs_neg_rule_loss"] == pytest.approx(2 / 95 ** 0.5)  # ranks 1..5 vs 1, 3.5, 5, 3.5, 2


def test_metric_keys_are_mlflow_legal():
    from raysweep.spectral.report import metric_key

    assert metric_key("layer.seed0/base_to_rl:seed0-sft0-learning_rate=0.0001.angle_mean.top0.1") == \
        "layer.seed0/base_to_rl_seed0-sft0-learning_rate_0.0001.angle_mean.top0.1"

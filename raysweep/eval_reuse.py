"""Reuse of an evaluation by identical weights: a content-addressed store of per-rule results.

Every seed of a sweep starts from the same base, so each trunk's step-0 checkpoint holds the same weights and
its held-out evaluation (ID, OOD: the same problems, greedy or seeded decoding) gives the same numbers. The first
trunk to evaluate it stores each rule's result under ``<output_dir>/evals/``, keyed by a digest of the
checkpoint's files (weights, tokenizer, config), :func:`raysweep.train.record.eval_key` (task and eval settings)
and :func:`code_digest` (the evaluation code and the torch and transformers versions: a fixed verifier or a new
library never reads an old result); later trunks read it instead of evaluating again. A trunk's own SFT problems
(``<rule>-train``) differ by seed and are never reused.

Pure parts: :func:`files_digest`, :func:`entry_name`. Effectful: :class:`EvalStore`.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

SKIP = frozenset({"manifest.json", "eval.json", "results.jsonl"})
"""A checkpoint directory's bookkeeping, not part of what the model computes."""


def files_digest(directory: Path) -> str:
    """A digest of every file in ``directory`` (names and bytes, sorted; bookkeeping in :data:`SKIP` left out)."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.name not in SKIP):
        h.update(str(path.relative_to(directory)).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of what computes an evaluation besides the weights and settings: raysweep's evaluation and task
    code, and the torch and transformers versions."""
    import torch
    import transformers

    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256(f"{torch.__version__}\0{transformers.__version__}\0".encode())
    for path in sorted([pkg / "evaluate.py", pkg / "attempts.py", *(pkg / "tasks").glob("*.py")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def entry_name(weights: str, key: str, rule: str) -> str:
    """The store's file for one rule's evaluation of these weights under this evaluation key."""
    return hashlib.sha256(f"{weights}\0{key}\0{rule}".encode()).hexdigest()[:24] + ".json"


class EvalStore:
    """``<output_dir>/evals/``: per-rule evaluations (summary and records) of a checkpoint's exact files."""

    def __init__(self, output_dir: str | Path, key: str):
        self.root = Path(output_dir) / "evals"
        self.key = f"{key}-{code_digest()}"

    def lookup(self, weights: str, rules) -> dict:
        """``{rule: RuleResult}`` for the rules stored for these weights (the others are left out)."""
        from raysweep.evaluate import RuleResult

        found = {}
        for rule in rules:
            path = self.root / entry_name(weights, self.key, rule)
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # absent, or a half-written file from a killed writer: evaluate again
            if entry.get("weights") != weights or entry.get("key") != self.key or entry.get("rule") != rule:
                continue
            summary = dict(entry["summary"])
            for name in ("ci95", "pass_at_k_ci95", "greedy_ci95"):
                if summary.get(name) is not None:
                    summary[name] = tuple(summary[name])
            found[rule] = RuleResult(**summary, records=entry["records"])
        return found

    def store(self, weights: str, results: dict, source: str) -> None:
        """Keep each rule's result of ``results`` (``{rule: RuleResult}``), noting the checkpoint it came from."""
        from raysweep.train.trunk import write_json_atomic

        self.root.mkdir(parents=True, exist_ok=True)
        for rule, r in results.items():
            write_json_atomic(self.root / entry_name(weights, self.key, rule),
                              {"weights": weights, "key": self.key, "rule": rule, "source": source,
                               "summary": r.summary(), "records": r.records})

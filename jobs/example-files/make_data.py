"""Make the example-files data: modular addition whose modulus is stated in the prompt.

    python jobs/example-files/make_data.py            # writes jobs/example-files/data/*.jsonl (deterministic)

Every problem is ``(a + b) mod m`` for a, b in 0..59. The ID modulus is 7: SFT examples, RL prompts and the ID
evaluation set use it. The OOD modulus is 11, stated in the prompt the same way: the OOD set asks whether the
model reads the modulus or has memorised "mod 7". The ID problems are split by a seeded hash of (a, b) into a
training pool and an evaluation pool, so no ID evaluation prompt is ever a training prompt (raysweep refuses one
that is). Answers are ``#### r`` lines, which the ``numeric`` checker reads. Extra columns (``a``, ``b``,
``modulus``) ride along to the scorer.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
ID_MOD, OOD_MOD = 7, 11
RANGE = range(60)
EVAL_SHARE = 0.1


def prompt(a: int, b: int, m: int) -> str:
    return f"Compute ({a} + {b}) mod {m}. End with '#### <answer>'."


def completion(a: int, b: int, m: int) -> str:
    return f"{a} + {b} = {a + b}; {a + b} mod {m} = {(a + b) % m}\n#### {(a + b) % m}"


def held_out(a: int, b: int) -> bool:
    digest = hashlib.sha256(f"example-files:{a}:{b}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < EVAL_SHARE


def row(a: int, b: int, m: int, with_completion: bool) -> dict:
    out = {"prompt": prompt(a, b, m), "answer": str((a + b) % m), "a": a, "b": b, "modulus": m}
    if with_completion:
        out["completion"] = completion(a, b, m)
    return out


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows):4d} rows to {path.relative_to(HERE.parent.parent)}")


def main(sft_n: int = 400, rl_n: int = 200, eval_n: int = 64) -> None:
    rng = random.Random(0)
    pairs = [(a, b) for a in RANGE for b in RANGE]
    train = [p for p in pairs if not held_out(*p)]
    evals = [p for p in pairs if held_out(*p)]
    rng.shuffle(train)
    rng.shuffle(evals)
    write(HERE / "data" / "sft.jsonl", [row(a, b, ID_MOD, True) for a, b in train[:sft_n]])
    write(HERE / "data" / "rl.jsonl", [row(a, b, ID_MOD, False) for a, b in train[sft_n:sft_n + rl_n]])
    write(HERE / "data" / "id.jsonl", [row(a, b, ID_MOD, True) for a, b in evals[:eval_n]])
    # OOD: the same kind of held-out pairs under the other modulus (its prompts differ from every training prompt)
    write(HERE / "data" / "ood.jsonl", [row(a, b, OOD_MOD, True) for a, b in evals[eval_n:2 * eval_n]])


if __name__ == "__main__":
    main()

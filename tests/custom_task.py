"""A user's own task class (``task.kind: custom_task:ParityTask``), the test fixture of the task protocol: is the
number of 1s in a bit string even or odd? The ID set has strings of ``length`` bits, the OOD set of ``ood_length``
bits; strings are split into training and evaluation pools by a seeded hash, so no evaluation string is trained on.
"""

from __future__ import annotations

import hashlib
import itertools
import random

from pydantic import BaseModel, ConfigDict, Field

from raysweep.tasks.protocol import PoolTooSmall, Task, Verdict


class ParityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    length: int = Field(6, ge=2, le=12, description="Bits per ID string.")
    ood_length: int = Field(8, ge=2, le=12, description="Bits per OOD string.")
    eval_share: float = Field(0.3, gt=0, lt=1, description="Share of ID strings held out for evaluation.")


class ParityTask(Task):
    kind = "parity"
    verdicts = ("correct", "wrong", "malformed")
    Options = ParityOptions
    max_new_tokens = 4

    @property
    def eval_sets(self):
        return ("id", "ood")

    def _held_out(self, bits: str) -> bool:
        h = hashlib.sha256(f"parity:{bits}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64 < self.options.eval_share

    def _strings(self, length: int) -> list[str]:
        return ["".join(b) for b in itertools.product("01", repeat=length)]

    def _row(self, bits: str, name: str) -> dict:
        answer = "even" if bits.count("1") % 2 == 0 else "odd"
        return {"prompt": [{"role": "user", "content": f"Parity of {bits}?"}], "bits": bits, "set": name,
                "completion": [{"role": "assistant", "content": answer}]}

    def _dataset(self, rows):
        from datasets import Dataset

        return Dataset.from_list(rows)

    def _train(self, n: int, seed: int, stream: str) -> list[dict]:
        pool = [s for s in self._strings(self.options.length) if not self._held_out(s)]
        rng = random.Random(f"parity:{stream}:{seed}")
        return [self._row(rng.choice(pool), "id") for _ in range(n)]

    def sft_dataset(self, n, seed, **_):
        return self._dataset(self._train(n, seed, "sft"))

    def rl_dataset(self, n, seed):
        return self._dataset(self._train(n, seed, "rl")).remove_columns(["completion"])

    def eval_dataset(self, name, n, seed=0):
        if name == "id":
            pool = [s for s in self._strings(self.options.length) if self._held_out(s)]
        else:
            pool = self._strings(self.options.ood_length)
        if len(pool) < n:
            raise PoolTooSmall(f"task.options: the {name!r} set holds {len(pool)} strings, fewer than eval.n={n}")
        random.Random(f"parity:eval:{name}:{seed}").shuffle(pool)
        return self._dataset([self._row(s, name) for s in pool[:n]])

    def score(self, completion, row):
        words = str(completion).strip().lower().split()
        if not words or words[-1].strip(".") not in ("even", "odd"):
            return Verdict("malformed", 0.0, None, "no even/odd")
        got = words[-1].strip(".")
        want = "even" if row["bits"].count("1") % 2 == 0 else "odd"
        return Verdict("correct" if got == want else "wrong", 1.0 if got == want else 0.0, got)

    def key(self, row):
        return row["bits"]

    def identity(self):
        return {"version": 1}

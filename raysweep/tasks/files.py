"""The ``files`` task (``task.kind: files``): a researcher's own data, no code needed.

Local JSON Lines (``.jsonl``/``.json``) or Parquet (``.parquet``) files, read with Hugging Face ``datasets``:

- ``task.sft``: rows ``{"prompt": str, "completion": str}`` (an ``answer`` column too, and the trunk's own
  problems are evaluated beside the held-out sets as ``<id>-train``);
- ``task.rl``: rows ``{"prompt": str, "answer": str}``;
- ``task.eval``: ``{name: file}``, the ID set first, then any number of OOD sets; rows ``{"prompt": str, "answer":
  str}`` (an expert ``completion`` too, and the evaluation loss is reported).

Every other column of a row reaches the scorer (``python:`` checkers read them). Rows are de-duplicated by prompt
(the first kept); the problem key is the prompt, or a ``key`` column (several rows of one key are one problem:
``n`` counts keys and intervals cluster by them). A prompt or key in both a training file (``sft``, ``rl``) and an
evaluation file is refused, with the count and an example: held out means held out. Every bad-data case (a missing
file, a row without a required field, a bad ``answer`` spec, an unimportable ``python:`` target, an evaluation set
smaller than ``eval.n``, train/eval overlap) is refused when the config loads, before any work.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raysweep.tasks import checkers
from raysweep.tasks.protocol import PoolTooSmall, Task, Verdict

SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
NEEDS = {"sft": "completion", "rl": "answer", "eval": "answer"}
"""The field every row of each file must have, beside ``prompt``."""


class FilesTaskConfig(BaseModel):
    """A task from local data files: SFT examples, RL prompts, named ID/OOD evaluation sets and an answer checker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["files"] = Field("files", description="files: this task reads its data from local files.")
    sft: str = Field(..., description="SFT examples: a .jsonl or .parquet file of rows {prompt, completion} "
                     "(relative paths: from the working directory).")
    rl: str = Field(..., description="RL prompts: a .jsonl or .parquet file of rows {prompt, answer}.")
    eval: dict[str, str] = Field(..., description="Evaluation sets by name, the ID set first, then any number of OOD "
                                 "sets: {id: data/id.jsonl, ood: data/ood.jsonl}; rows {prompt, answer}.")
    answer: str = Field("numeric", description="The answer checker: numeric | exact | regex:<pattern with one group> | "
                        "python:<module>:<function> (see raysweep.tasks.checkers).")
    system_prompt: str | None = Field(None, description="A system message before every prompt (prompts go through "
                                      "the model's chat template); None: the user message only.")
    reward: dict[str, float] = Field(
        default_factory=lambda: {"correct": 1.0, "wrong": 0.0, "malformed": 0.0},
        description="RL reward per verdict (correct, wrong, malformed; a python: checker returning a float gives "
        "that float instead).")
    max_new_tokens: int | None = Field(None, ge=1, description="Answer budget (evaluation and RL); default: 1.5x the "
                                       "longest expert answer (SFT completions), +8.")

    @field_validator("sft", "rl")
    @classmethod
    def _one_path(cls, v):
        return _absolute(v)

    @field_validator("eval")
    @classmethod
    def _eval_paths(cls, v):
        if not v:
            raise ValueError("task.eval: give at least one evaluation set, the ID set first: {id: data/id.jsonl, "
                             "ood: data/ood.jsonl}")
        for name in v:
            if not name or any(c in name for c in "/\\ =") or name.endswith("-train"):
                raise ValueError(f"task.eval: {name!r} is not a set name; use letters, digits, '_' and '-' "
                                 "(not ending in -train)")
        return {name: _absolute(p) for name, p in v.items()}

    @field_validator("answer")
    @classmethod
    def _answer(cls, v):
        checkers.parse_spec(v)
        return v

    @field_validator("reward")
    @classmethod
    def _reward(cls, v):
        base = {"correct": 1.0, "wrong": 0.0, "malformed": 0.0}
        unknown = sorted(set(v) - set(base))
        if unknown:
            raise ValueError(f"task.reward: unknown verdict(s) {unknown}; verdicts are {sorted(base)}")
        return {**base, **v}

    @model_validator(mode="after")
    def _data(self):
        self.make()  # reads and checks every file (memoised on path, size and mtime): bad data fails at load
        return self

    def make(self) -> "FilesTask":
        return FilesTask(self)

    def identity(self, exclude: set[str] = frozenset()) -> dict:
        """The checker, prompts, rewards and budget, and each file by content (not by path)."""
        out = self.model_dump(mode="json", exclude={"sft", "rl", "eval"} | set(exclude))
        out["data"] = {"sft": _digest(self.sft), "rl": _digest(self.rl),
                       "eval": {name: _digest(p) for name, p in self.eval.items()}}
        return out


def _digest(path: str) -> str:
    st = Path(path).stat()
    return _digest_of(path, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _digest_of(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _absolute(path: str) -> str:
    return str(Path(os.path.expanduser(str(path))).resolve())


@dataclass(frozen=True)
class _Rows:
    path: str
    rows: tuple[dict, ...]
    duplicates: int


def _file(path: str, what: str, need: str) -> _Rows:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{what}: file {path} does not exist (paths are relative to the working directory)")
    st = p.stat()
    return _read(str(p), st.st_size, st.st_mtime_ns, what, need)


@lru_cache(maxsize=64)
def _read(path: str, size: int, mtime_ns: int, what: str, need: str) -> _Rows:
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{what}: {path} is not a .jsonl, .json or .parquet file")
    import datasets

    datasets.disable_progress_bars()
    try:
        if SUFFIXES[suffix] == "json":
            ds = datasets.Dataset.from_json(path, keep_in_memory=True)
        else:
            ds = datasets.Dataset.from_parquet(path, keep_in_memory=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is one line naming the file
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ValueError(f"{what}: cannot read {path} as {SUFFIXES[suffix]} ({type(exc).__name__}: {first})") from None
    rows, seen, dupes = [], set(), 0
    for i, row in enumerate(ds.to_list(), start=1):
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{what}: {path} row {i} has no 'prompt' text (rows are {{\"prompt\": str, "
                             f"\"{need}\": str, ...}})")
        value = row.get(need)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError(f"{what}: {path} row {i} has no '{need}' (rows are {{\"prompt\": str, \"{need}\": "
                             "str, ...}})")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"{what}: {path} row {i}: '{need}' is a {type(value).__name__}, not text")
        row[need] = value if isinstance(value, str) else _number_text(value)
        if "answer" in row and row["answer"] is not None and not isinstance(row["answer"], str):
            row["answer"] = _number_text(row["answer"])
        if "key" in row and row["key"] is not None:
            row["key"] = str(row["key"])
        if prompt in seen:
            dupes += 1
            continue
        seen.add(prompt)
        rows.append(row)
    if not rows:
        raise ValueError(f"{what}: {path} has no rows")
    return _Rows(path, tuple(rows), dupes)


def _number_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _key(row: Mapping[str, Any]) -> str:
    k = row.get("key")
    return str(k) if k is not None else row["prompt"]


def _overlap(train: dict[str, list[dict]], evals: dict[str, list[dict]]) -> None:
    for field_name, of in (("prompt", lambda r: r["prompt"]), ("key", _key)):
        seen: dict[str, str] = {}
        for where, rows in train.items():
            for r in rows:
                seen.setdefault(of(r), where)
        for name, rows in evals.items():
            both = [of(r) for r in rows if of(r) in seen]
            if both:
                example = both[0] if len(both[0]) <= 80 else both[0][:77] + "..."
                raise ValueError(f"task: {len(both)} {field_name}(s) of task.eval.{name} are also in a training file "
                                 f"(e.g. {example!r}, in task.{seen[both[0]]}): held out means held out; remove them "
                                 "from one side")


class FilesTask(Task):
    """The :class:`~raysweep.tasks.protocol.Task` of a :class:`FilesTaskConfig`."""

    kind = "files"
    verdicts = ("correct", "wrong", "malformed")

    def __init__(self, config: FilesTaskConfig):
        super().__init__(config)
        self.config = config
        self.max_new_tokens = config.max_new_tokens
        self.sft_rows = list(_file(config.sft, "task.sft", NEEDS["sft"]).rows)
        self.rl_rows = list(_file(config.rl, "task.rl", NEEDS["rl"]).rows)
        self.eval_rows = {name: list(_file(p, f"task.eval.{name}", NEEDS["eval"]).rows)
                          for name, p in config.eval.items()}
        _overlap({"sft": self.sft_rows, "rl": self.rl_rows}, self.eval_rows)
        kind, arg = checkers.parse_spec(config.answer)
        self._python = checkers.python_checker(arg) if kind == "python" else None
        self._check = {"numeric": checkers.numeric, "exact": checkers.exact}.get(kind) or (
            checkers.regex_checker(arg) if kind == "regex" else None)

    @property
    def eval_sets(self) -> tuple[str, ...]:
        return tuple(self.config.eval)

    def messages(self, prompt: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.config.system_prompt}] if self.config.system_prompt else []
        return system + [{"role": "user", "content": prompt}]

    def _dataset(self, rows: list[dict], completion: bool):
        from datasets import Dataset

        cols: dict[str, list] = {}
        names = list(dict.fromkeys(k for r in rows for k in r))
        for name in names:
            if name == "prompt":
                cols["prompt"] = [self.messages(r["prompt"]) for r in rows]
            elif name == "completion":
                if completion:
                    cols["completion"] = [[{"role": "assistant", "content": str(r["completion"])}] for r in rows]
            else:
                cols[name] = [r.get(name) for r in rows]
        cols["key"] = [_key(r) for r in rows]
        return Dataset.from_dict(cols)

    @staticmethod
    def _sample(rows: list[dict], n: int, stream: str, seed: int) -> list[dict]:
        order = list(range(len(rows)))
        random.Random(f"raysweep:files:{stream}:{seed}").shuffle(order)
        return [rows[i] for i in order[:n]]

    def sft_dataset(self, n: int, seed: int, **_: Any):
        """``n`` SFT examples: a seeded sample of the file's rows (all of them, shuffled, when ``n`` is larger)."""
        return self._dataset(self._sample(self.sft_rows, n, "sft", seed), completion=True)

    def rl_dataset(self, n: int, seed: int):
        """``n`` RL prompts: a seeded sample of the file's rows (all of them when ``n`` is larger)."""
        return self._dataset(self._sample(self.rl_rows, n, "rl", seed), completion=False)

    def eval_dataset(self, name: str, n: int, seed: int = 0):
        """Every row of ``n`` distinct problems (keys) of set ``name``, the keys a seeded draw, rows in file order."""
        if name not in self.eval_rows:
            raise KeyError(f"unknown evaluation set {name!r}; task.eval names {list(self.eval_rows)}")
        rows = self.eval_rows[name]
        keys = list(dict.fromkeys(_key(r) for r in rows))
        if len(keys) < n:
            raise PoolTooSmall(f"task.eval.{name}: {self.config.eval[name]} holds {len(keys)} distinct problems, fewer "
                               f"than eval.n={n}: lower eval.n to at most {len(keys)}, or add rows")
        random.Random(f"raysweep:files:eval:{name}:{seed}").shuffle(keys)
        keep = set(keys[:n])
        return self._dataset([r for r in rows if _key(r) in keep], completion=True)

    def score(self, completion: str, row: Mapping[str, Any]) -> Verdict:
        completion = completion if isinstance(completion, str) else str(completion)
        rewards = self.config.reward
        try:
            if self._python is not None:
                verdict, answer, detail, reward = self._python(completion, row)
            else:
                verdict, answer, detail = self._check(completion, row.get("answer", ""))
                reward = None
        except Exception as exc:  # noqa: BLE001 - the scorer never raises on a completion
            verdict, answer, detail, reward = "malformed", None, f"checker failed ({type(exc).__name__})", None
        return Verdict(verdict, rewards[verdict] if reward is None else reward, answer, detail)

    def key(self, row: Mapping[str, Any]) -> str:
        return _key(row) if isinstance(row.get("prompt"), str) else str(row.get("key") or super().key(row))

    def record(self, row: Mapping[str, Any]) -> dict:
        return {"answer": row.get("answer")}

    def budget_examples(self, seed: int) -> list[str]:
        return [str(r["completion"]) for r in self.sft_rows[:256]]

    def train_rows(self) -> list[dict]:
        """SFT rows with an ``answer`` (the trunk's own problems can be scored)."""
        return [r for r in self.sft_rows if r.get("answer") is not None]

    def identity(self) -> dict:
        return self.config.identity()

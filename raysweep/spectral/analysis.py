"""Compare checkpoints pair by pair: one row per (pair, weight matrix), summaries per module type, per
block and per pair. Results are cached per pair (keyed by both checkpoints' files and the analysis
settings), so a sweep that grows, or a rerun, computes only the pairs it has not seen."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from raysweep.spectral.spectral_config import SpectralConfig

ID_FIELDS = ("pair", "name", "module", "layer", "rows", "cols", "rank")
MAX_CKPTS_PER_CALL = 8  # checkpoints whose SVDs of one matrix a task holds at once


@dataclass(frozen=True)
class Pair:
    """Two checkpoints: how ``target`` moved away from ``ref``."""

    kind: str  # pair | trunk (base -> SFT length) | step (previous -> next SFT length) | rl (start -> RL) | rl-base
    ref: str
    target: str
    ref_label: str
    target_label: str
    seed: int | None = None
    sft_step: int | None = None  # trunk/step: the target's SFT length; rl: the SFT length RL started from
    prev_step: int | None = None  # step: the ref's SFT length
    cell: str | None = None  # rl, rl-base: the sweep cell

    def label(self) -> str:
        return f"{self.ref_label} -> {self.target_label}"


def _stamp(ckpt: str) -> list:
    from raysweep.spectral.weights import tensor_files

    files = sorted(set(tensor_files(ckpt).values()))
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def pair_key(pair: Pair, cfg: SpectralConfig, stamps: dict[str, list] | None = None) -> str:
    """The cache key of a pair; ``stamps`` (checkpoint -> file stamps) spares reading a checkpoint's index
    again for every pair it is in."""
    from raysweep.train.trunk import digest

    stamps = {} if stamps is None else stamps
    for c in (pair.ref, pair.target):
        if c not in stamps:
            stamps[c] = _stamp(c)
    settings = cfg.model_dump(mode="json", include={"modules", "layer_pattern", "fractions", "dtype"})
    return digest({"ref": str(Path(pair.ref).resolve()), "target": str(Path(pair.target).resolve()),
                   "ref_files": stamps[pair.ref], "target_files": stamps[pair.target], "cfg": settings}, 16)


def batches(pairs: Sequence[Pair], limit: int = MAX_CKPTS_PER_CALL) -> list[tuple[list[str], list[tuple[int, int]], list[int]]]:
    """Group pairs by ref, at most ``limit`` checkpoints per group: (checkpoints, index pairs, pair ids)."""
    by_ref: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        by_ref[p.ref].append(i)
    out = []
    for ref, ids in by_ref.items():
        for start in range(0, len(ids), limit - 1):
            part = ids[start:start + limit - 1]
            ckpts = [ref]
            index = []
            for i in part:
                if pairs[i].target not in ckpts:
                    ckpts.append(pairs[i].target)
                index.append((0, ckpts.index(pairs[i].target)))
            out.append((ckpts, index, part))
    return out


def compute(pairs: Sequence[Pair], cfg: SpectralConfig, cache_dir: Path | None = None) -> list[dict]:
    """Rows for every pair (cached pairs read back, the others computed as tasks); each row carries the
    pair's fields (``kind``, ``ref_label``, ...) and its matrix metrics."""
    from raysweep.spectral.engine import chunks, compare_group, run_tasks
    from raysweep.spectral.weights import common_matrices

    if not pairs:
        return []
    stamps: dict[str, list] = {}
    keys = [pair_key(p, cfg, stamps) for p in pairs]
    found: dict[str, list[dict]] = {}  # pair key -> rows (a pair listed twice is computed once)
    if cache_dir is not None:
        for k in set(keys):
            f = cache_dir / f"{k}.json"
            if f.is_file():
                found[k] = json.loads(f.read_text())
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    todo = [i for k, i in sorted(first.items(), key=lambda kv: kv[1]) if k not in found]
    if not todo:
        print(f"[spectral] all {len(pairs)} pair(s) cached in {cache_dir}", flush=True)
    else:
        sub = [pairs[i] for i in todo]
        matrices = common_matrices(sorted({p.ref for p in sub} | {p.target for p in sub}), cfg)
        calls, owners = [], []
        for ckpts, index, ids in batches(sub):
            for group in chunks(matrices, cfg.matrices_per_task):
                calls.append((ckpts, index, group, cfg))
                owners.append(ids)
        print(f"[spectral] {len(sub)} pair(s) to compare ({len(set(keys)) - len(sub)} cached), {len(matrices)} "
              f"matrices each, {len(calls)} task(s)", flush=True)
        results = run_tasks(compare_group, calls, cfg, "comparing")
        new: dict[str, list[dict]] = defaultdict(list)
        for ids, rows in zip(owners, results):
            for row in rows:
                new[keys[todo[ids[row["pair"]]]]].append(row)
        for k, rows in new.items():
            found[k] = rows
            if cache_dir is not None:
                from raysweep.train.trunk import write_json_atomic

                cache_dir.mkdir(parents=True, exist_ok=True)
                write_json_atomic(cache_dir / f"{k}.json", rows)
    out = []
    for i, p in enumerate(pairs):
        meta = {k: v for k, v in asdict(p).items()}
        for row in found[keys[i]]:
            out.append({**meta, **{k: v for k, v in row.items() if k != "pair"}, "pair": i})
    return out


def metric_names(rows: Iterable[dict]) -> list[str]:
    """The per-matrix metrics (numbers that summaries average)."""
    pair_fields = set(Pair.__dataclass_fields__)
    names: list[str] = []
    for r in rows:
        for k, v in r.items():
            if (k not in ID_FIELDS and k not in pair_fields and not k.startswith("k.top") and k not in names
                    and isinstance(v, (int, float))):
                names.append(k)
    return names


def summarise(rows: Sequence[dict], by: Sequence[str] = ()) -> list[dict]:
    """Means of every metric over matrices, per pair and per the ``by`` fields (e.g. ``("module",)``,
    ``("layer",)``); each summary row keeps the pair's fields and counts its matrices."""
    pair_fields = list(Pair.__dataclass_fields__)
    names = metric_names(rows)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["pair"], *(r[b] for b in by))].append(r)
    out = []
    for key, rs in groups.items():
        first = rs[0]
        s = {"pair": key[0], **{f: first[f] for f in pair_fields}, **dict(zip(by, key[1:])), "matrices": len(rs)}
        for n in names:
            vals = [r[n] for r in rs if r.get(n) is not None and r[n] == r[n]]  # drop NaN
            s[n] = sum(vals) / len(vals) if vals else float("nan")
        out.append(s)
    return out


def write_csv(rows: Sequence[dict], path: Path) -> Path:
    import csv

    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    tmp.replace(path)
    return path


def write_tables(rows: Sequence[dict], out: Path) -> dict[str, list[dict]]:
    """matrices.csv, by_module.csv, by_layer.csv, pairs.csv in ``out``; the summaries."""
    out.mkdir(parents=True, exist_ok=True)
    s = {"pairs": summarise(rows), "by_module": summarise(rows, ("module",)), "by_layer": summarise(rows, ("layer",))}
    write_csv(rows, out / "matrices.csv")
    for name, table in s.items():
        write_csv(table, out / f"{name}.csv")
    return s

"""Batched ID/OOD evaluation: generation with left padding and the KV cache, exact scoring, intervals.

For each rule, a fixed evaluation set (``eval_dataset``: distinct problems from the evaluation pool,
seeded) is answered by the model and scored by the exact verifier. Reported per rule: accuracy with a
95% interval, n (independent problems), the answers' count and the verdict breakdown. With one greedy
answer per problem the interval is Wilson's; with ``samples > 1`` answers per problem (temperature
sampling) the accuracy is pass@1 (the mean over problems of the share of correct answers) with an
interval clustered by problem (:mod:`raysweep.intervals`), and pass@k (some answer correct) is reported
with a Wilson interval over problems. Each record names its problem (``problem``: values under the
rule and the target), which clustering and paired comparisons group by.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from raysweep.intervals import by_problem, clustered_accuracy, wilson
from raysweep.tasks.generalpoints import VERDICTS, problem_of
from raysweep.tasks.protocol import task_of


class EvalConfig(BaseModel):
    """How evaluation generates and how big the fixed evaluation sets are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(128, ge=1, description="Distinct evaluation problems per rule (from the evaluation pool; a pool "
                   "with fewer is refused at load).")
    seed: int = Field(0, description="Seed of the evaluation sets and of sampling; same seed, same numbers.")
    batch_size: int = Field(64, ge=1, description="Prompts generated together (shared-prefix KV cache, left-padded).")
    max_new_tokens: int | None = Field(
        None, ge=1, description="Generation budget; default: 1.5x the longest expert answer in the set, +8.")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy; > 0 samples at this temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass (when temperature > 0).")
    samples: int = Field(1, ge=1, description="Answers per prompt (needs temperature > 0 when > 1).")
    train_n: int = Field(
        32, ge=0, description="Also evaluate each trunk checkpoint on this many of its own SFT problems (distinct; "
        "reported as '<train_rule>-train'), so the gap between training and held-out ID accuracy (memorisation) "
        "shows; 0: skip.")

    def model_post_init(self, _):
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("eval.samples > 1 needs eval.temperature > 0 (greedy answers would all be equal)")


# --------------------------------------------------------------------------------------- statistics


@dataclass
class RuleResult:
    """Evaluation of one rule. ``n``: independent problems; ``answers``: answers scored (``n * samples``);
    ``verdicts`` counts answers. ``records``: per prompt, its problem, cards, answers and verdicts."""

    rule: str
    n_prompts: int
    samples: int
    n: int
    answers: int
    correct: int
    accuracy: float
    ci95: tuple[float, float]
    ci_method: str
    verdicts: dict[str, int]
    pass_at_k: float | None = None
    pass_at_k_ci95: tuple[float, float] | None = None
    greedy_accuracy: float | None = None  # with samples > 1: the greedy answer's accuracy beside pass@1
    greedy_ci95: tuple[float, float] | None = None
    attempts: int = 1  # task.attempts: the headline accuracy is within this many attempts
    accuracy_at_attempt: list[dict] | None = None  # with attempts > 1: accuracy within k, for k = 1..attempts
    loss: float | None = None
    mean_new_tokens: float = 0.0
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    records: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("records")
        return d


def summarise(rule: str, answers: list[list[str]], verdicts: list[list[str]],
              problems: Sequence | None = None, names: Sequence[str] = VERDICTS) -> RuleResult:
    """Accuracy (clustered by problem), interval and verdict breakdown from per-prompt verdict lists (pure).
    ``problems``: each prompt's problem key (default: every prompt its own problem); ``names``: the task's
    verdicts (default GeneralPoints')."""
    keys = list(range(len(verdicts))) if problems is None else list(problems)
    groups = by_problem(keys, [[v == "correct" for v in vs] for vs in verdicts])
    k = max((len(vs) for vs in verdicts), default=1)
    flat = [v for vs in verdicts for v in vs]
    correct = sum(v == "correct" for v in flat)
    counts = {name: sum(v == name for v in flat) for name in names}
    acc, ci, method = clustered_accuracy(groups)
    pak = pak_ci = None
    if k > 1:
        solved = sum(any(g) for g in groups)
        pak, pak_ci = solved / max(1, len(groups)), wilson(solved, len(groups))
    return RuleResult(rule=rule, n_prompts=len(verdicts), samples=k, n=len(groups), answers=len(flat), correct=correct,
                      accuracy=acc, ci95=ci, ci_method=method, verdicts=counts, pass_at_k=pak, pass_at_k_ci95=pak_ci)


# --------------------------------------------------------------------------------------- generation


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


MIN_SHARED_PREFIX = 16
"""Shortest common prompt prefix (tokens) worth computing once and sharing across a batch."""


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences, leaving at least one token in each."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    for i in range(max(n, 0)):
        tok = first[i]
        if any(s[i] != tok for s in seqs):
            return i
    return max(n, 0)


class SharedPrefix:
    """The prompts' common token prefix, run through the model once; each batch continues from a copy of
    its KV cache. ``length`` is 0 (and nothing is cached) when the prefix is too short to be worth it."""

    def __init__(self, model, seqs: Sequence[Sequence[int]], enabled: bool = True):
        import torch

        n = common_prefix_len(seqs) if enabled else 0
        self.length = n if n >= MIN_SHARED_PREFIX else 0
        self.cache = None
        if self.length:
            with torch.inference_mode():
                prefix = torch.tensor([list(seqs[0][: self.length])], device=model.device)
                self.cache = model(prefix, use_cache=True).past_key_values

    def model_kwargs(self, batch: int) -> dict:
        """``past_key_values`` for a batch of ``batch`` rows (a fresh copy: generation extends it)."""
        import copy

        if self.cache is None:
            return {}
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(batch)
        return {"past_key_values": cache}


def generate(
    model,
    tokenizer,
    prompts: Sequence[list[dict]],
    cfg: EvalConfig,
    max_new_tokens: int,
    label: str = "",
    progress: Callable[[str], None] | None = _progress,
    share_prefix: bool = True,
) -> tuple[list[list[str]], int]:
    """Answers (``cfg.samples`` per prompt, in prompt order) and the number of generated tokens.

    Prompts are rendered with the tokenizer's chat template, sorted by length and generated in batches
    with the KV cache. With ``share_prefix`` the prompts' common token prefix (system prompt, task
    description, rule, answer format: most of a GeneralPoints prompt) is run through the model once; each
    batch starts from a copy of that cache and prefills only its own suffixes, left-padded between the
    prefix and the suffix (``[prefix][pad..][suffix]``; masked, positions follow the mask). Without it,
    whole prompts are left-padded. Both give the same answers up to floating-point reordering.
    """
    import torch

    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (len(ids[i]), i))
    k = cfg.samples
    pad = tokenizer.pad_token_id
    prefix = SharedPrefix(model, ids, share_prefix)
    shared = prefix.length
    device = model.device
    out: list[list[str]] = [[] for _ in texts]
    gen_tokens = 0
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=cfg.temperature > 0, pad_token_id=pad,
                  eos_token_id=tokenizer.eos_token_id)
    if cfg.temperature > 0:
        kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p, top_k=0)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    t0 = time.time()
    done = 0
    with torch.inference_mode():
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            rows = [ids[i][shared:] for i in idx for _ in range(k)]  # k samples: k copies of the prompt
            width = max(len(r) for r in rows)
            input_ids = torch.tensor([ids[idx[0]][:shared] + [pad] * (width - len(r)) + r for r in rows],
                                     device=device)
            mask = torch.tensor([[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
            seqs = model.generate(input_ids=input_ids, attention_mask=mask, **prefix.model_kwargs(len(rows)), **kwargs)
            new = seqs[:, input_ids.shape[1]:]
            for row in range(new.shape[0]):
                toks = new[row].tolist()
                if tokenizer.eos_token_id in toks:
                    toks = toks[: toks.index(tokenizer.eos_token_id) + 1]
                else:
                    toks = [t for t in toks if t != pad]
                gen_tokens += len(toks)
                out[idx[row // k]].append(tokenizer.decode(toks, skip_special_tokens=True))
            done += len(idx)
            if progress is not None:
                el = time.time() - t0
                eta = el / done * (len(order) - done)
                progress(f"[eval {label}] {done}/{len(order)} prompts  {el:.1f}s  ETA {eta:.0f}s  "
                         f"{gen_tokens / max(el, 1e-9):.0f} tok/s")
    return out, gen_tokens


def auto_max_new_tokens(tokenizer, completions: Sequence[str]) -> int:
    longest = max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions)
    return int(math.ceil(1.5 * longest)) + 8


def expert_loss(model, tokenizer, prompts: Sequence[list[dict]], completions: Sequence[list[dict]],
                batch_size: int = 16, share_prefix: bool = True) -> tuple[float, int]:
    """Summed token NLL of the expert completions given their prompts, and the token count.

    Teacher-forced, completion tokens only (what SFT's loss measures), chat template applied. As in
    :func:`generate`, the prompts' common prefix is run once and each batch continues from a copy of its
    KV cache (suffixes right-padded, so positions need no adjusting).
    """
    import torch

    pad = tokenizer.pad_token_id
    rows, n_prompt = [], []
    for p, c in zip(prompts, completions):
        p_ids = tokenizer(tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True),
                          add_special_tokens=False)["input_ids"]
        f_ids = tokenizer(tokenizer.apply_chat_template(list(p) + list(c), tokenize=False),
                          add_special_tokens=False)["input_ids"]
        if f_ids[: len(p_ids)] != p_ids:  # the template re-tokenised the boundary: concatenate instead
            f_ids = p_ids + tokenizer(c[0]["content"] + (tokenizer.eos_token or ""), add_special_tokens=False)["input_ids"]
        rows.append(f_ids)
        n_prompt.append(len(p_ids))
    prefix = SharedPrefix(model, [r[:n] for r, n in zip(rows, n_prompt)], share_prefix)
    shared = prefix.length
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = [r[shared:] for r in rows[start:start + batch_size]]
            n_p = [n - shared for n in n_prompt[start:start + batch_size]]
            width = max(len(r) for r in batch)
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in batch], device=model.device)
            mask = torch.tensor([[1] * (shared + len(r)) + [0] * (width - len(r)) for r in batch], device=model.device)
            target = torch.tensor([[0] * n + [1] * (len(r) - n) + [0] * (width - len(r)) for r, n in zip(batch, n_p)],
                                  device=model.device)
            logits = model(input_ids=ids, attention_mask=mask, **prefix.model_kwargs(len(batch))).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
            m = target[:, 1:].float()
            total += float((nll * m).sum())
            count += int(m.sum())
    return total, count


def evaluate_rule(model, tokenizer, task, rule: str, cfg: EvalConfig,
                  progress: Callable[[str], None] | None = _progress, with_loss: bool = False,
                  rank: int = 0, world: int = 1, ds=None, name: str | None = None) -> RuleResult | None:
    """Evaluate one evaluation set (``task``: a task config or :class:`~raysweep.tasks.protocol.Task`; ``rule``:
    the set's name, for GeneralPoints a rule) on its fixed problems (or on ``ds``, rows shaped like them: prompt
    and the scorer's columns, optionally an expert completion; the result is named ``name``, default ``rule``).

    With ``world > 1`` (inside a torch.distributed group) each rank answers the prompts ``rank::world``;
    answers are gathered and rank 0 scores them and returns the result (other ranks return None).
    ``with_loss`` adds the expert-answer loss (``loss``, per completion token) to the result, where the set has
    expert completions.
    """
    import torch

    T = task_of(task)
    ds = T.eval_dataset(rule, cfg.n, cfg.seed) if ds is None else ds
    rows = ds.to_list()
    with_loss = with_loss and "completion" in ds.column_names
    experts = ([c[0]["content"] for c in ds["completion"]] if "completion" in ds.column_names
               else T.budget_examples(cfg.seed))
    budget = cfg.max_new_tokens or T.max_new_tokens or auto_max_new_tokens(tokenizer, experts)
    mine = list(range(rank, len(ds), world))
    prompts = [rows[i]["prompt"] for i in mine]
    torch.manual_seed(cfg.seed + rank)
    t0 = time.time()
    answers, gen_tokens = generate(model, tokenizer, prompts, cfg, budget, label=name or rule,
                                   progress=progress if rank == 0 else None)
    episodes = None
    if T.attempts > 1:  # the paper's protocol (GeneralPoints): feedback after each wrong attempt, unsolved go on
        from raysweep.attempts import run_episodes

        single = cfg.model_copy(update={"samples": 1})

        def again(convs, attempt):
            out, n = generate(model, tokenizer, convs, single, budget, label=f"{name or rule} attempt {attempt}",
                              progress=progress if rank == 0 else None)
            return [o[0] for o in out], n

        gp = T.config
        hands = [(rows[i]["cards"], rows[i]["target"]) for i in mine]
        episodes, more = run_episodes(again, prompts, answers, hands, gp.rule(rule), gp, gp.rule(gp.train_rule))
        gen_tokens += more
        answers = [[ep[-1] for ep in eps] for eps in episodes]
    if cfg.samples > 1:  # the greedy answer too, reported beside the sampled pass@1 (kept last per prompt)
        greedy_cfg = cfg.model_copy(update={"samples": 1, "temperature": 0.0})
        greedy, more = generate(model, tokenizer, prompts, greedy_cfg, budget, label=f"{name or rule} greedy",
                                progress=progress if rank == 0 else None)
        answers = [a + g for a, g in zip(answers, greedy)]
        gen_tokens += more
    loss = expert_loss(model, tokenizer, prompts, [rows[i]["completion"] for i in mine]) if with_loss else (0.0, 0)
    seconds = time.time() - t0
    if world > 1:
        import torch.distributed as dist

        gathered: list = [None] * world
        dist.all_gather_object(gathered, (mine, answers, episodes, gen_tokens, loss))
        if rank != 0:
            return None
        by_index: dict[int, list[str]] = {}
        ep_index: dict[int, list] = {}
        gen_tokens, loss = 0, (0.0, 0)
        for idx, ans, eps, toks, (l_sum, l_n) in gathered:
            by_index.update(zip(idx, ans))
            ep_index.update(zip(idx, eps or [None] * len(idx)))
            gen_tokens += toks
            loss = (loss[0] + l_sum, loss[1] + l_n)
        answers = [by_index[i] for i in range(len(ds))]
        episodes = [ep_index[i] for i in range(len(ds))] if episodes is not None else None
    greedy = None
    if cfg.samples > 1:
        greedy, answers = [a[-1] for a in answers], [a[:-1] for a in answers]
    scores = [[T.score(a, row) for a in ans] for row, ans in zip(rows, answers)]
    problems = [T.key(row) for row in rows]
    res = summarise(name or rule, answers, [[s.verdict for s in ss] for ss in scores], problems, T.verdicts)
    if greedy is not None:
        g = [T.score(a, row) for row, a in zip(rows, greedy)]
        res.greedy_accuracy, res.greedy_ci95, _ = clustered_accuracy(
            by_problem(problems, [[s.verdict == "correct"] for s in g]))
    attempt_verdicts = None
    if episodes is not None:
        from raysweep.attempts import accuracy_at_attempts, solved_at

        attempt_verdicts = [[[T.score(a, row).verdict for a in ep] for ep in eps] for row, eps in zip(rows, episodes)]
        res.attempts = T.attempts
        res.accuracy_at_attempt = accuracy_at_attempts(
            problems, [[solved_at(vs) for vs in per] for per in attempt_verdicts], T.attempts)
    res.seconds = seconds
    res.mean_new_tokens = gen_tokens / max(1, res.answers)
    res.tokens_per_s = gen_tokens / max(seconds, 1e-9)
    if with_loss:
        res.loss = loss[0] / max(1, loss[1])
    res.records = [
        {"problem": key, **T.record(row), "answers": ans, "verdicts": [s.verdict for s in ss],
         T.answer_field: [s.answer for s in ss]}
        | ({"greedy": {"answer": greedy[i], "verdict": g[i].verdict}} if greedy is not None else {})
        | ({"attempts": [[{"answer": a, "verdict": v} for a, v in zip(ep, vs)]
                         for ep, vs in zip(episodes[i], attempt_verdicts[i])],
            "solved_at": [solved_at(vs) for vs in attempt_verdicts[i]]} if episodes is not None else {})
        for i, (key, row, ans, ss) in enumerate(zip(problems, rows, answers, scores))
    ]
    return res


def evaluate(model, tokenizer, task, cfg: EvalConfig, rules: Sequence[str] | None = None,
             progress: Callable[[str], None] | None = _progress, with_loss: bool = False,
             rank: int = 0, world: int = 1, extra: dict | None = None) -> dict[str, RuleResult]:
    """Evaluate every evaluation set in ``rules`` (``None``: the task's ``eval_sets``, GeneralPoints'
    ``task.eval_rules``; an empty list: none of them), in order, then each named set of ``extra``
    (``{name: dataset}``, scored like training rows: e.g. :func:`train_set`); rank 0 gets the results."""
    T = task_of(task)
    out = {}
    sets = [(r, r, None) for r in (T.eval_sets if rules is None else rules)]
    sets += [(name, T.train_name, ds) for name, ds in (extra or {}).items()]
    for name, rule, ds in sets:
        res = evaluate_rule(model, tokenizer, T, rule, cfg, progress, with_loss, rank, world, ds=ds, name=name)
        if res is not None:
            out[name] = res
    return out


def train_set(task, cfg: EvalConfig, sft_rows) -> dict:
    """``{'<train set>-train': dataset}``: the first ``eval.train_n`` distinct problems of a trunk's own SFT
    examples (``sft_rows``: its SFT dataset), to evaluate beside the held-out sets; empty when ``train_n`` is
    0, the examples use varied rules (a GeneralPoints pre-training stage) or, for other tasks, no SFT row has an
    ``answer`` to score against."""
    T = task_of(task)
    if not cfg.train_n:
        return {}
    if T.kind == "generalpoints":
        gp = T.config
        if gp.face_values is not None:
            return {}
        rule = gp.rule(gp.train_rule)
        keys = [problem_of(c, rule, t) for c, t in zip(sft_rows["cards"], sft_rows["target"])]
        usable = [True] * len(keys)
    else:
        if "answer" not in sft_rows.column_names:
            return {}
        rows = sft_rows.to_list()
        keys = [T.key(r) for r in rows]
        usable = [r["answer"] is not None for r in rows]
    seen, keep = set(), []
    for i, (p, ok) in enumerate(zip(keys, usable)):
        if ok and p not in seen:
            seen.add(p)
            keep.append(i)
            if len(keep) == cfg.train_n:
                break
    return {f"{T.train_name}-train": sft_rows.select(keep)} if keep else {}


def format_table(results: dict[str, RuleResult]) -> str:
    """A plain-text table of results, one row per rule."""
    names = list(next(iter(results.values())).verdicts) if results else list(VERDICTS)
    label = "rule" if names == list(VERDICTS) else "set"
    head = f"{label:<8}{'n':>6}  {'accuracy':>8}  {'95% CI':<16}" + "".join(f"{v:>18}" for v in names)
    rows = [head, "-" * len(head)]
    for r in results.values():
        ci = f"[{r.ci95[0]:.3f}, {r.ci95[1]:.3f}]"
        rows.append(f"{r.rule:<8}{r.n:>6}  {r.accuracy:>8.3f}  {ci:<16}"
                    + "".join(f"{r.verdicts.get(v, 0):>18}" for v in names))
        if r.pass_at_k is not None:
            rows.append(f"{'':<8}{'':>6}  accuracy is pass@1 over {r.samples} samples ({r.answers} answers, interval "
                        f"clustered by problem); pass@{r.samples}={r.pass_at_k:.3f} "
                        f"[{r.pass_at_k_ci95[0]:.3f}, {r.pass_at_k_ci95[1]:.3f}] over {r.n} problems")
        if r.accuracy_at_attempt:
            rows.append(f"{'':<8}{'':>6}  accuracy is within {r.attempts} attempts (verifier feedback after each "
                        "wrong one); within k attempts:")
            rows += [f"{'':<8}{'':>6}    k={a['attempt']}: {a['accuracy']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}] "
                     f"n={a['n']}" for a in r.accuracy_at_attempt]
        if r.greedy_accuracy is not None:
            rows.append(f"{'':<8}{'':>6}  greedy={r.greedy_accuracy:.3f} "
                        f"[{r.greedy_ci95[0]:.3f}, {r.greedy_ci95[1]:.3f}]")
    rows.append(f"n: independent problems per {label}")
    return "\n".join(rows)

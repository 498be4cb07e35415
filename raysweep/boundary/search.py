"""``raysweep boundary``: find the recovery window's edges with a Ray Tune experiment whose trials an
Optuna study chooses, instead of running the whole grid.

A search *point* is (RL setting, SFT length): one trial runs that point's RL cell for every seed and
reports RL's paired gain over seeds on ``boundary.rule`` (its 95% interval's lower end is the study's
objective value). Which point comes next is decided by :class:`BracketingSampler`, an Optuna sampler
that applies :func:`raysweep.boundary.bracketing.next_cell` to the study's finished and running trials:
it brackets each edge to one checkpoint spacing (see that module for why this and not a maximising
sampler). :class:`BoundarySearch` (Tune's ``OptunaSearch``) asks it for trials, waits when only running
trials can tell what to do next, and ends the experiment when every edge is bracketed.

The study lives in ``<sweep>/boundary/optuna.db`` (sqlite, Optuna's RDB storage), so a search can be
resumed (run the same command again: trials left running by a dead driver are marked failed, their RL
runs resume from their checkpoints when chosen again) or extended (add SFT lengths or RL settings to the
YAML: every finished point stays an observation). Points whose RL runs already finished on disk (from
``raysweep run`` on the same sweep, or an earlier search) are entered into the study without a trial, so
no cell is paid for twice.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from raysweep.boundary.bracketing import Decision, next_cell
from raysweep.boundary.metrics import Diff, compare_records, over_seeds
from raysweep.config import RaysweepConfig
from raysweep.sweep.plan import Cell

METRIC = "recovery_low"


def settings_key(settings: tuple) -> str:
    """A point's RL setting as a stable string (Optuna parameter value)."""
    from raysweep.boundary.analyse import settings_label

    return settings_label(settings)


def search_points(cells: list[Cell]) -> dict[tuple[str, int], list[Cell]]:
    """(setting, SFT length) -> its cells, one per seed, in the grid's order."""
    points: dict[tuple[str, int], list[Cell]] = {}
    for c in cells:
        points.setdefault((settings_key(c.settings), c.sft_step), []).append(c)
    return points


def point_gain(cfg: RaysweepConfig, jobs: dict[str, dict], cells: list[Cell]) -> Diff | None:
    """RL's paired gain on ``boundary.rule`` over the point's seeds; None until every seed's run finished."""
    from raysweep.boundary.analyse import final_eval_file
    from raysweep.train.rl import is_finished

    rule = cfg.boundary.rule
    diffs = []
    for c in cells:
        job = jobs[c.name]
        rdir = Path(job["run_dir"])
        after = final_eval_file(rdir)
        if not is_finished(rdir) or after is None:
            return None
        before = json.loads((Path(job["start_path"]) / "eval.json").read_text())[rule]["records"]
        diffs.append(compare_records(before, json.loads(after.read_text())[rule]["records"]))
    return over_seeds(diffs)


def trunk_prior(cfg: RaysweepConfig) -> list[float]:
    """The trunks' mean accuracy on ``boundary.rule`` at each SFT length (for the first probe)."""
    from raysweep.boundary.analyse import trunk_curve
    from raysweep.sweep.plan import lineage

    by_step: dict[int, list[float]] = {}
    for seed in cfg.sft.seeds:
        tdir = Path(lineage(cfg, Cell(seed, cfg.sft.checkpoints[0]))["trunk_dir"])
        for step, acc, _, _ in trunk_curve(tdir, cfg.boundary.rule)[0]:
            by_step.setdefault(step, []).append(acc)
    return [sum(by_step.get(s, [0.0])) / len(by_step.get(s, [0.0])) for s in sorted(cfg.sft.checkpoints)]


def _optuna():
    import optuna

    return optuna


class BracketingSampler(_optuna().samplers.BaseSampler):
    """An Optuna sampler for the two parameters ``setting`` (an id: the index of its label in the study's
    ``settings`` user attribute, so that settings can be added later) and ``sft_step`` that proposes the
    point the bracketing policy wants next, from the study's complete (observed) and running (in flight)
    trials. Integer parameters, not categorical ones: Optuna refuses a categorical parameter whose
    choices change within a study, and extending a search adds lengths and settings."""

    def __init__(self, lengths: list[int], settings: list[str], threshold: float, prior: list[float] | None):
        self.lengths, self.settings, self.threshold, self.prior = list(lengths), list(settings), threshold, prior
        self.labels: list[str] = list(settings)  # every setting the study has seen, by id (see open_study)
        self._planned: dict[int, Decision] = {}
        self.first_trial = 0  # trials numbered from here on belong to this invocation (see open_study)

    def observations(self, study, exclude: int | None = None):
        """(recovers by finished point, points in flight, points that failed in this invocation)."""
        optuna = _optuna()
        recovers, running, failed = {}, set(), set()
        for t in study.get_trials(deepcopy=False):
            if t.number == exclude or "setting" not in t.params or "sft_step" not in t.params:
                continue
            sid = int(t.params["setting"])
            if sid >= len(self.labels):
                continue
            point = (self.labels[sid], int(t.params["sft_step"]))
            if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None:
                recovers[point] = t.value > self.threshold
            elif t.state == optuna.trial.TrialState.RUNNING:
                running.add(point)
            elif t.state == optuna.trial.TrialState.FAIL and t.number >= self.first_trial:
                failed.add(point)
        return recovers, running, failed - set(recovers)

    def decide(self, study, exclude: int | None = None) -> Decision:
        """The policy's next point. A point whose trial failed (after Tune's retries) in this invocation is
        not proposed again until the next one: it counts as in flight."""
        recovers, running, failed = self.observations(study, exclude)
        return next_cell(self.lengths, self.settings, recovers, running | failed, self.prior)

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        d = self._planned.get(trial.number)
        if d is None:
            d = self._planned[trial.number] = self.decide(study, exclude=trial.number)
        if d.kind != "run":  # asked without a plan (should not happen through BoundarySearch): any point
            return param_distribution.low
        return self.labels.index(d.setting) if param_name == "setting" else d.length


def _boundary_search_class():
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    class BoundarySearch(OptunaSearch):
        """Tune's OptunaSearch, asking the bracketing sampler first: no trial while only running trials can
        tell what to do next, and the end of the experiment when every edge is bracketed."""

        def suggest(self, trial_id: str):
            if trial_id not in self._ot_trials:
                d = self._sampler.decide(self._ot_study)
                if d.kind == "done":
                    return Searcher.FINISHED
                if d.kind == "wait":
                    _, running, failed = self._sampler.observations(self._ot_study)
                    if not running:  # only failed points stand in the way: stop, say which
                        print(f"[boundary] stopping: the trials of {sorted(failed)} failed; run again to retry "
                              "them", file=sys.stderr)
                        return Searcher.FINISHED
                    return None
            return super().suggest(trial_id)

    return BoundarySearch


def open_study(path: Path, name: str, sampler: BracketingSampler):
    """The search's persistent study (sqlite at ``path``), created or loaded, and its parameter space.
    The sampler's settings get stable ids (new ones appended to the study's ``settings`` attribute); the
    length parameter's range only grows. Trials a dead driver left running are marked failed (their
    points can be chosen again). Returns (study, storage, space)."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=sampler,
                                load_if_exists=True)
    labels = list(study.user_attrs.get("settings", []))
    labels += [s for s in sampler.settings if s not in labels]
    top = max([int(study.user_attrs.get("max_sft_step", 0))] + sampler.lengths)
    study.set_user_attr("settings", labels)
    study.set_user_attr("max_sft_step", top)
    sampler.labels = labels
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    sampler.first_trial = len(study.get_trials(deepcopy=False))
    space = {"setting": optuna.distributions.IntDistribution(0, len(labels) - 1),
             "sft_step": optuna.distributions.IntDistribution(0, top)}
    return study, storage, space


def search_tuner(trainable, sampler: BracketingSampler, storage, study_name: str, space: dict, budget: int,
                 max_concurrent: int, name: str, storage_path: str, fs=None, constants: dict | None = None,
                 max_failures: int = 0):
    """The Tune experiment of a search: at most ``budget`` trials of ``trainable`` (which reports
    ``recovery_low``), each point chosen by the sampler through :class:`BoundarySearch`. Every trial's
    config holds ``setting`` (an id), ``sft_step``, ``labels`` (id -> setting) and ``constants``."""
    from ray import tune

    searcher = _boundary_search_class()(space=space, metric=METRIC, mode="max", sampler=sampler,
                                        study_name=study_name, storage=storage)
    return tune.Tuner(
        trainable, param_space={**(constants or {}), "labels": list(sampler.labels)},
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=budget, max_concurrent_trials=max_concurrent,
                                    trial_name_creator=lambda t: point_key(t.config)),
        run_config=tune.RunConfig(name=name, storage_path=storage_path, storage_filesystem=fs, verbose=1,
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )


def point_key(config: dict) -> str:
    """``<setting label>@<sft_step>`` of a trial's config."""
    return f"{config['labels'][int(config['setting'])]}@{int(config['sft_step'])}"


def replay_trial(config: dict) -> None:
    """A trial that trains nothing: it reports the value a recorded or synthetic surface holds for its
    point (``config["surface"]``: ``{"<setting>@<sft_step>": recovery_low}``). Rehearses a search, or
    replays a finished sweep's outcomes, through the real Tune/Optuna machinery in seconds."""
    from ray import tune

    tune.report({METRIC: float(config["surface"][point_key(config)])})


def boundary_trial(config: dict) -> None:
    """One Tune trial: the point's RL run for every seed (trained, resumed or found finished), then the
    paired gain over seeds."""
    from ray import tune

    from raysweep.train.rl import launch

    ctx = json.loads(Path(config["points_file"]).read_text())
    key = point_key(config)
    jobs = {name: json.loads(Path(p).read_text()) for name, p in ctx["points"][key].items()}
    for job in jobs.values():
        launch(job)
    cfg = RaysweepConfig.model_validate(ctx["config"])
    cells = [Cell(c["seed"], c["sft_step"], tuple(tuple(kv) for kv in c["settings"])) for c in ctx["cells"][key]]
    d = point_gain(cfg, jobs, cells)
    if d is None:
        raise RuntimeError(f"point {key}: an RL run ended without its final evaluation")
    tune.report({METRIC: d.low, "recovery": d.value, "recovery_high": d.high, "seeds": d.n,
                 "recovers": d.low > cfg.boundary.threshold})


def run_boundary(cfg: RaysweepConfig) -> Path:
    """Trunks, then the boundary search's Tune experiment; the report. Returns the sweep directory."""
    import optuna
    from ray import tune

    from raysweep.sweep.run import finish, prepare, report_failures, trial_resources
    from raysweep.train import trunk as T

    prep = prepare(cfg, "boundary")
    cfg, sdir = prep.cfg, prep.sdir
    points = search_points(prep.cells)
    settings = list(dict.fromkeys(s for s, _ in points))
    lengths = sorted(cfg.sft.checkpoints)
    bdir = sdir / "boundary"
    bdir.mkdir(exist_ok=True)
    T.write_json_atomic(bdir / "points.json", {
        "config": json.loads(cfg.model_dump_json()),
        "points": {f"{s}@{n}": {c.name: str(Path(prep.jobs[c.name]["run_dir"]) / "job.json") for c in cs}
                   for (s, n), cs in points.items()},
        "cells": {f"{s}@{n}": [{"seed": c.seed, "sft_step": c.sft_step, "settings": [list(kv) for kv in c.settings]}
                               for c in cs] for (s, n), cs in points.items()},
    })

    sampler = BracketingSampler(lengths, settings, cfg.boundary.threshold, trunk_prior(cfg))
    study, storage, space = open_study(bdir / "optuna.db", sdir.name, sampler)
    observed = set(sampler.observations(study)[0])
    found = 0
    for (s, n), cs in points.items():
        if (s, n) in observed:
            continue
        d = point_gain(cfg, prep.jobs, cs)
        if d is not None:  # finished on disk (a grid run, an earlier search): an observation, no trial
            study.add_trial(optuna.trial.create_trial(
                params={"setting": sampler.labels.index(s), "sft_step": n}, distributions=space, value=d.low,
                user_attrs={"source": "finished on disk", "recovery": d.value, "recovery_high": d.high}))
            found += 1
    done_before = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    budget = cfg.boundary.max_trials or len(points)
    print(f"[boundary] {len(points)} points ({len(settings)} RL setting(s) x {len(lengths)} SFT lengths); "
          f"{done_before} already observed ({found} found finished on disk); at most {budget} new trial(s)",
          file=sys.stderr)

    if sampler.decide(study).kind != "done":  # else nothing to run: no Tune experiment at all
        plan, resources = trial_resources(prep, budget, "boundary")
        storage_path, fs = prep.store.tune_storage()
        invocation = sum(1 for r in T.read_results(sdir) if r.get("mode") == "boundary")
        tuner = search_tuner(tune.with_resources(boundary_trial, resources), sampler, storage, sdir.name, space,
                             budget, plan.max_concurrent, f"boundary-{invocation}", storage_path, fs,
                             {"points_file": str(bdir / "points.json")}, cfg.sweep.max_failures)
        report_failures(tuner.fit(), "boundary")
    ran = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) - done_before
    decision = sampler.decide(study)
    print(f"[boundary] {ran} new trial(s); " + ("the search is complete (every edge bracketed, or no window)" if decision.kind == "done" else
          f"the search is not finished (next: {decision.setting} at SFT length {decision.length}); run the same "
          "command again to go on, or raise boundary.max_trials"), file=sys.stderr)
    return finish(prep, "boundary", require_all=False)

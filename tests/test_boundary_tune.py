"""The boundary search's machinery with real Ray Tune and a real Optuna RDB study, on a synthetic
response surface (the trainable reports a known window instead of training): the sampler's points are
run, the experiment ends by itself once both edges are bracketed, a budget stops it early, and the next
invocation on the same study resumes where it stopped (with a trial a dead driver left running)."""

import pytest

LENGTHS = [0, 50, 100, 200, 400, 800, 1200, 1600]
PRIOR = [0.3, 0.45, 0.4, 0.3, 0.2, 0.1, 0.05, 0.05]
WINDOW = {"a": (200, 800)}


SURFACE = {f"{s}@{n}": (0.04 if lo <= n <= hi else -0.03) for s, (lo, hi) in WINDOW.items() for n in LENGTHS}


@pytest.mark.integration
def test_search_runs_what_the_sampler_asks_stops_when_bracketed_and_resumes(tmp_path):
    import optuna
    import ray

    from raysweep.boundary.bracketing import replay, setting_state
    from raysweep.boundary.search import BracketingSampler, open_study, replay_trial, search_tuner

    def invocation(budget, name, lengths=LENGTHS):
        sampler = BracketingSampler(lengths, ["a"], 0.0, PRIOR[:len(lengths)])
        study, storage, space = open_study(tmp_path / "optuna.db", "s", sampler)
        grid = search_tuner(replay_trial, sampler, storage, "s", space, budget, 1, name, str(tmp_path),
                            constants={"surface": SURFACE}).fit()
        return grid, sampler, study

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        # a first search over fewer lengths (the grid is extended afterwards), stopped by its budget
        grid, _, study = invocation(3, "first", LENGTHS[:6])
        assert len(grid) == 3 and all(r.error is None for r in grid)
        # a driver dies with a trial in flight: the next invocation marks it failed and goes on
        study.ask(fixed_distributions={"setting": optuna.distributions.IntDistribution(0, 0),
                                       "sft_step": optuna.distributions.IntDistribution(0, 800)})
        grid, sampler, study = invocation(50, "second")
    finally:
        ray.shutdown()

    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    points = [(sampler.labels[t.params["setting"]], t.params["sft_step"]) for t in complete]
    assert len(points) == len(set(points)), "a point ran twice"
    assert len(study.get_trials(states=(optuna.trial.TrialState.FAIL,))) == 1
    assert sampler.decide(study).kind == "done" and len(grid) < 50 - 3  # it ended by itself
    # the window bracketed exactly, with no more trials than the policy's own replay on the full grid
    expected = replay(LENGTHS, ["a"], lambda s, n: WINDOW[s][0] <= n <= WINDOW[s][1], PRIOR)
    assert len(points) <= len(expected) + 1
    for s, (lo, hi) in WINDOW.items():
        labels = {LENGTHS.index(t.params["sft_step"]): t.value > 0 for t in complete
                  if sampler.labels[t.params["setting"]] == s}
        st = setting_state(labels)
        assert (LENGTHS[st.inside[0]], LENGTHS[st.inside[1]]) == (lo, hi)
        assert st.lower_done(len(LENGTHS)) and st.upper_done(len(LENGTHS))
    assert len(points) < len(LENGTHS)

"""The boundary search policy (pure): on every possible window of a noise-free grid it brackets both edges
exactly, never runs a cell twice, waits only on cells in flight, and costs less than the grid."""

import itertools

import pytest

from raysweep.boundary.bracketing import Decision, next_cell, replay, setting_state

LENGTHS = [0, 50, 100, 200, 400, 800, 1200, 1600]
CURVE = [0.3, 0.45, 0.4, 0.3, 0.2, 0.1, 0.05, 0.05]  # the trunk peaks at 50
WINDOWS = [None] + [(a, b) for a, b in itertools.combinations_with_replacement(range(len(LENGTHS)), 2)]


def _truth(window):
    return lambda s, length: window is not None and LENGTHS[window[0]] <= length <= LENGTHS[window[1]]


def _found(order, setting, m):
    st = setting_state({LENGTHS.index(length): v for s, length, v in order if s == setting})
    if st.inside is None:
        return None
    assert st.lower_done(m) and st.upper_done(m)
    return st.inside


@pytest.mark.parametrize("concurrency", [1, 3])
def test_every_window_is_bracketed_exactly_without_repeats(concurrency):
    m = len(LENGTHS)
    total = 0
    for window in WINDOWS:
        order = replay(LENGTHS, ["a"], _truth(window), CURVE, concurrency=concurrency)
        cells = [(s, length) for s, length, _ in order]
        assert len(cells) == len(set(cells)), f"{window}: a cell ran twice"
        assert _found(order, "a", m) == window, (window, order)
        total += len(order)
    if concurrency == 1:
        # noise-free, one setting, 8 lengths: on average well under the grid (every window equally likely)
        assert total / len(WINDOWS) < 0.75 * m


def test_a_second_setting_with_the_same_window_costs_four_probes():
    window = (3, 5)  # 200..800
    order = replay(LENGTHS, ["a", "b"], lambda s, length: _truth(window)(s, length), CURVE)
    b = [(length, v) for s, length, v in order if s == "b"]
    assert [length for length, _ in b] == [200, 100, 800, 1200]  # the edges of a's window, checked
    assert _found(order, "b", len(LENGTHS)) == window


def test_settings_with_different_windows_each_get_their_own():
    windows = {"lr=1e-6": (3, 5), "lr=3e-6": (2, 6), "lr=1e-5": None}
    order = replay(LENGTHS, list(windows), lambda s, length: _truth(windows[s])(s, length), CURVE)
    assert {s: _found(order, s, len(LENGTHS)) for s in windows} == windows
    assert len(order) < 3 * len(LENGTHS)


def test_next_cell_waits_only_on_cells_in_flight_and_then_is_done():
    lengths = [0, 10]
    assert next_cell(lengths, ["a"], {}, set(), [0.5, 0.2]) == Decision("run", "a", 10)  # behind the peak
    # the only cell left is in flight: wait for it
    assert next_cell(lengths, ["a"], {("a", 10): False}, {("a", 0)}, [0.5, 0.2]) == Decision("wait")
    assert next_cell(lengths, ["a"], {("a", 10): False, ("a", 0): False}, set(), [0.5, 0.2]) == Decision("done")
    # a window reaching both grid ends is done as soon as both ends recover
    assert next_cell(lengths, ["a"], {("a", 10): True, ("a", 0): True}, set()) == Decision("done")
    # cells from another grid (e.g. lengths since dropped) are ignored
    assert next_cell(lengths, ["a"], {("a", 999): True}, set(), [0.5, 0.2]).kind == "run"

"""The paper's four findings, checked on the synthetic sweep of test_boundary_analyse (a known surface: the
OOD peak at 10 of 80, a fall to 0.10, RL recovering from 20 to 40 only) and a synthetic spectral summary."""

from raysweep.boundary.analyse import analyse
from raysweep.boundary.findings import ABSENT, APPEARED, PARTLY, UNMEASURED, markdown, paper_findings

from test_boundary_analyse import STEPS, synthetic_sweep


def _spectral(sv=1e-4, angles=(0.1, 0.2, 0.4, 0.8)):
    pairs = [{"kind": "trunk", "seed": seed, "sft_step": step, "sv_rel_change": sv, "w_rel_change": 1e-2,
              "angle_mean.top0.1": angle}
             for seed in (0, 1) for step, angle in zip(STEPS[1:], angles)]
    return {"pairs": pairs}


def test_the_known_surface_shows_all_four(tmp_path):
    _, sdir = synthetic_sweep(tmp_path)
    a = analyse(sdir)
    fall = a.falls[(0, "ood")]
    assert abs(fall.value - (0.10 - 0.45)) < 1 / 128 and fall.significant_loss
    f = paper_findings(a, _spectral())
    assert [x.verdict for x in f] == [APPEARED] * 4, markdown(f)
    assert "peak at SFT length 10, 10 of 80" in f[0].evidence
    assert "from SFT length 20" in f[1].evidence and "of 0.100 lost = 102%" in f[1].evidence
    assert "recovers from SFT length 20 to 40" in f[2].evidence
    assert "ρ(angle, length) +1.00" in f[3].evidence and "mean ρ(angle, OOD) after the peak -1.00" in f[3].evidence
    assert markdown(f).count("**appeared**") == 4


def test_what_is_missing_or_contrary_is_said(tmp_path):
    _, sdir = synthetic_sweep(tmp_path)
    a = analyse(sdir)
    assert paper_findings(a, None)[3].verdict == UNMEASURED
    assert paper_findings(a, _spectral(sv=1e-2))[3].verdict == PARTLY  # values moved as much as the weights
    assert paper_findings(a, _spectral(sv=1e-2, angles=(0.8, 0.4, 0.2, 0.3)))[3].verdict == ABSENT
    # a trunk whose peak is late: finding 1 is only partly there (it still falls from the peak)
    late = paper_findings(a, None, rule="ood")[0]
    assert late.verdict == APPEARED
    from raysweep.boundary.findings import peak_then_fall

    assert peak_then_fall(a, "ood", early=0.1).verdict == PARTLY
    assert peak_then_fall(a, "id").verdict in (PARTLY, ABSENT)  # flat ID: no significant fall


def test_a_flat_curve_or_a_peak_at_the_base_is_not_the_paper_finding(tmp_path):
    import dataclasses

    from raysweep.boundary.findings import peak_then_fall

    _, sdir = synthetic_sweep(tmp_path)
    a = analyse(sdir)
    curve = a.curves[(0, "ood")]
    for seed in (0, 1):  # the base as the highest point: SFT only erodes
        a.curves[(seed, "ood")] = [(curve[0][0], 0.9, 0.8, 1.0)] + curve[1:]
        a.peaks[(seed, "ood")] = dataclasses.replace(a.peaks[(seed, "ood")], step=0, accuracy=0.9)
    f = peak_then_fall(a, "ood")
    assert f.verdict == PARTLY and "no rise" in f.evidence
    for seed in (0, 1):
        a.curves[(seed, "ood")] = [(s, 0.0, 0.0, 0.03) for s, *_ in curve]
    assert peak_then_fall(a, "ood").verdict == ABSENT and "flat" in peak_then_fall(a, "ood").evidence

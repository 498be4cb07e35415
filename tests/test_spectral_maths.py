"""Spectral maths on synthetic matrices with known rotations and scalings."""

import math

import pytest
import torch

from raysweep.spectral.maths import (compare, edit_matrix, outside_energy, parse_edit, principal_angles, spearman,
                                     svd, top_k)


def orthonormal(m: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(m, n, generator=g, dtype=torch.float64))
    return q


def rotated(Q: torch.Tensor, k: int, angles: list[float]) -> torch.Tensor:
    """Q with column i (< k) turned by angles[i] towards column k + i, and column k + i turned back:
    still orthonormal, and span(first k) is at exactly those principal angles from Q's."""
    R = Q.clone()
    for i, a in enumerate(angles):
        u, w = Q[:, i], Q[:, k + i]
        R[:, i] = math.cos(a) * u + math.sin(a) * w
        R[:, k + i] = -math.sin(a) * u + math.cos(a) * w
    return R


def test_principal_angles_recovered_small_and_large():
    Q = orthonormal(40, 12, 0)
    k = 4
    angles = [1e-7, 3e-4, 0.5, 1.4]  # tiny (sine path) to nearly orthogonal (cosine path)
    got = principal_angles(Q[:, :k], rotated(Q, k, angles)[:, :k])
    assert torch.allclose(got, torch.tensor(sorted(angles), dtype=torch.float64), atol=1e-9, rtol=0)
    assert principal_angles(Q[:, :k], Q[:, :k]).abs().max() < 1e-7


def test_compare_recovers_rotation_and_value_change():
    m, n, r = 30, 20, 20
    U, V = orthonormal(m, r, 1), orthonormal(n, r, 2)
    s = torch.linspace(10, 1, r, dtype=torch.float64)
    W = (U * s) @ V.T
    k = 4  # fraction 0.2 of rank 20
    angles_u, angles_v = [0.01, 0.02, 0.1, 0.3], [0.05, 0.0, 0.0, 0.2]
    scale = 1 + torch.linspace(-0.01, 0.02, r, dtype=torch.float64)
    Wt = (rotated(U, k, angles_u) * (s * scale)) @ rotated(V, k, angles_v).T
    c = compare(svd(W), svd(Wt), [0.2])
    assert c["k.top0.2"] == k
    assert abs(c["angle_u_mean.top0.2"] - math.degrees(sum(angles_u) / k)) < 1e-6
    assert abs(c["angle_u_max.top0.2"] - math.degrees(0.3)) < 1e-6
    assert abs(c["angle_v_mean.top0.2"] - math.degrees(sum(angles_v) / k)) < 1e-6
    ds = s * scale - s
    assert abs(c["sv_rel_change"] - float(ds.norm() / s.norm())) < 1e-9
    assert abs(c["sv_max_rel_change"] - 0.02) < 1e-9
    assert abs(c["sv_top_rel_change"] - (-0.01)) < 1e-9
    assert abs(c["gap.top0.2"] - float((s[3] - s[4]) / s[3])) < 1e-12
    # no change at all: zero angles, zero value change
    same = compare(svd(W), svd(W.clone()), [0.2, 1.0])
    assert same["angle_mean.top0.2"] < 1e-5 and same["sv_rel_change"] < 1e-12 and same["w_rel_change"] == 0.0


def test_outside_energy():
    U, V = orthonormal(10, 10, 3), orthonormal(8, 8, 4)
    inside = 2.0 * torch.outer(U[:, 0], V[:, 1])  # within top-2 (left u0, right v1)
    outside = 3.0 * torch.outer(U[:, 5], V[:, 6])
    assert outside_energy(inside, U[:, :2], V[:, :2]) < 1e-12
    assert abs(outside_energy(outside, U[:, :2], V[:, :2]) - 1.0) < 1e-12
    assert abs(outside_energy(inside + outside, U[:, :2], V[:, :2]) - 9 / 13) < 1e-12
    assert math.isnan(outside_energy(torch.zeros(10, 8, dtype=torch.float64), U[:, :2], V[:, :2]))


def _pair(seed: int = 5):
    m, n = 24, 16
    U, V = orthonormal(m, n, seed), orthonormal(n, n, seed + 1)
    s = torch.linspace(5, 0.5, n, dtype=torch.float64)
    Wr = (U * s) @ V.T
    Ut, Vt = rotated(U, 4, [0.2, 0.1, 0.05, 0.3]), rotated(V, 4, [0.1, 0.2, 0.0, 0.0])
    st = s * (1 + 0.05 * torch.linspace(0, 1, n, dtype=torch.float64))
    Wt = (Ut * st) @ Vt.T
    return Wr, Wt


def test_edit_that_restores_everything_is_the_ref():
    Wr, Wt = _pair()
    assert torch.allclose(edit_matrix(svd(Wr), svd(Wt), "both"), Wr, atol=1e-12, rtol=0)


def test_direction_restore_with_equal_values_is_the_ref():
    Wr, Wt = _pair()
    a = svd(Wr)
    # the target: the ref's values, turned directions
    Wt_same_values = (svd(Wt).U * a.s) @ svd(Wt).V.T
    assert torch.allclose(edit_matrix(a, svd(Wt_same_values), "directions"), Wr, atol=1e-12, rtol=0)
    # with changed values: exactly the ref's vectors carrying the target's values
    d = svd(edit_matrix(a, svd(Wt), "directions"))
    assert torch.allclose(d.s, svd(Wt).s, atol=1e-12)
    assert principal_angles(d.U, a.U).max() < 1e-6 and principal_angles(d.V, a.V).max() < 1e-6
    # values only: the target's directions with the ref's values
    v = svd(edit_matrix(a, svd(Wt), "values"))
    assert torch.allclose(v.s, a.s, atol=1e-12)
    assert principal_angles(v.U, svd(Wt).U).max() < 1e-6


def test_topk_splice():
    Wr, Wt = _pair()
    a, b = svd(Wr), svd(Wt)
    assert torch.allclose(edit_matrix(a, b, "topk:1"), edit_matrix(a, b, "directions"), atol=1e-12, rtol=0)
    k = top_k(a.rank, 0.25)
    e = svd(edit_matrix(a, b, "topk:0.25"))
    # the top-k singular triplets are the ref's directions carrying the target's top-k values
    assert torch.allclose(e.s[:k], b.s[:k], atol=1e-10)
    assert principal_angles(e.U[:, :k], a.U[:, :k]).max() < 1e-6
    assert principal_angles(e.V[:, :k], a.V[:, :k]).max() < 1e-6
    # the remainder lives in the complement of the ref's top-k subspaces
    rest = edit_matrix(a, b, "topk:0.25") - (a.U[:, :k] * b.s[:k]) @ a.V[:, :k].T
    assert (a.U[:, :k].T @ rest).abs().max() < 1e-12 and (rest @ a.V[:, :k]).abs().max() < 1e-12


def test_parse_edit_errors_name_the_fix():
    assert parse_edit("topk:0.1") == ("topk", 0.1)
    for bad in ("rotate", "topk", "topk:2", "values:1"):
        with pytest.raises(ValueError):
            parse_edit(bad)


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)  # ties: average ranks
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))

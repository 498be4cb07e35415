"""Spectral maths, pure (torch tensors in, numbers and tensors out): singular values, principal angles
between singular subspaces, the energy of an update outside a subspace, spectral edits, rank correlation.

Notation: a weight ``W`` (m x n) has the thin SVD ``W = U diag(s) V^T`` with ``r = min(m, n)``, ``s``
descending; ``U_k``, ``V_k`` are the first ``k`` columns (the top-k left and right singular subspaces).
``ref`` is the matrix compared against (the base model, or the SFT checkpoint an RL run started from),
``target`` the one that moved.

Principal angles between two k-dimensional subspaces with orthonormal bases ``A`` and ``B``:
``cos(theta_i) = sigma_i(A^T B)``. ``arccos`` loses half the digits for small angles (its slope is
infinite at 1), so small angles come from ``sin(theta_i) = sigma_i(B - A A^T B)`` instead (Knyazev and
Argentati 2002): each angle is read from whichever of the two is better conditioned (sine below 45
degrees, cosine above). In float64 both are exact to ~1e-12.

A subspace is only well defined where the spectrum has a gap: if ``s_k`` and ``s_{k+1}`` are (nearly)
equal, any rotation inside their span is an equally valid SVD, and the top-k angles can be large without
the matrix having changed much. ``gap`` (``(s_k - s_{k+1}) / s_k`` of the ref) is reported beside every
angle for that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from raysweep.spectral.spectral_config import parse_edit, top_k



@dataclass(frozen=True)
class SVD:
    """The thin SVD of one matrix (float64 unless asked otherwise)."""

    U: torch.Tensor  # m x r
    s: torch.Tensor  # r, descending
    V: torch.Tensor  # n x r (V, not V^T)
    W: torch.Tensor  # the matrix itself (in the SVD's dtype): kept, not rebuilt from the factors

    @property
    def rank(self) -> int:
        return int(self.s.shape[0])

    def matrix(self) -> torch.Tensor:
        return self.W


def svd(w: torch.Tensor, dtype: torch.dtype = torch.float64) -> SVD:
    w = w.detach().to(dtype)
    U, s, Vh = torch.linalg.svd(w, full_matrices=False)
    return SVD(U, s, Vh.T, w)


def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between span(A) and span(B); A, B: m x k, orthonormal columns."""
    if A.shape != B.shape:
        raise ValueError(f"bases must have the same shape, got {tuple(A.shape)} and {tuple(B.shape)}")
    M = A.T @ B
    cos = torch.linalg.svdvals(M).clamp(max=1.0)  # descending: cos of ascending angles
    sin = torch.linalg.svdvals(B - A @ M).clamp(max=1.0).flip(0)  # ascending sines of ascending angles
    return torch.where(cos > math.sqrt(0.5), torch.arcsin(sin), torch.arccos(cos))


def outside_energy(delta: torch.Tensor, Uk: torch.Tensor, Vk: torch.Tensor) -> float:
    """Share of the update's energy (squared Frobenius norm) outside the ref's top-k singular subspaces:
    ``1 - ||U_k^T dW V_k||^2 / ||dW||^2`` (0: the update only re-weights the ref's top-k directions;
    1: it lives entirely outside them). NaN for a zero update."""
    total = float(torch.linalg.matrix_norm(delta) ** 2)
    if total == 0.0:
        return float("nan")
    inside = float(torch.linalg.matrix_norm(Uk.T @ delta @ Vk) ** 2)
    return max(0.0, 1.0 - inside / total)


def compare(ref: SVD, target: SVD, fractions: Sequence[float]) -> dict[str, float]:
    """How ``target`` differs from ``ref``: relative change of the weights and of the singular values, and
    per fraction f of the rank (k = round(f r)): the mean and largest principal angle (degrees) between the
    top-k left subspaces (``u``) and right subspaces (``v``), the update's energy outside the ref's top-k
    subspaces, and the ref's spectral gap at k."""
    if ref.U.shape != target.U.shape or ref.V.shape != target.V.shape:
        raise ValueError(f"matrices differ in shape: {tuple(ref.U.shape)}x{tuple(ref.V.shape)} vs "
                         f"{tuple(target.U.shape)}x{tuple(target.V.shape)}")
    w_ref, w_tgt = ref.matrix(), target.matrix()
    delta = w_tgt - w_ref
    ds = target.s - ref.s
    s_norm = float(torch.linalg.vector_norm(ref.s))
    nonzero = ref.s > ref.s[0] * 1e-12
    out = {
        "rank": ref.rank,
        "w_rel_change": float(torch.linalg.matrix_norm(delta) / torch.linalg.matrix_norm(w_ref)),
        "sv_rel_change": float(torch.linalg.vector_norm(ds)) / s_norm if s_norm else float("nan"),
        "sv_max_rel_change": float((ds[nonzero].abs() / ref.s[nonzero]).max()) if nonzero.any() else float("nan"),
        "sv_top_rel_change": float(ds[0] / ref.s[0]) if s_norm else float("nan"),
    }
    for f in fractions:
        k = top_k(ref.rank, f)
        au = torch.rad2deg(principal_angles(ref.U[:, :k], target.U[:, :k]))
        av = torch.rad2deg(principal_angles(ref.V[:, :k], target.V[:, :k]))
        key = fraction_key(f)
        out[f"k.top{key}"] = k
        out[f"angle_u_mean.top{key}"] = float(au.mean())
        out[f"angle_u_max.top{key}"] = float(au.max())
        out[f"angle_v_mean.top{key}"] = float(av.mean())
        out[f"angle_v_max.top{key}"] = float(av.max())
        out[f"angle_mean.top{key}"] = float((au.mean() + av.mean()) / 2)
        out[f"outside.top{key}"] = outside_energy(delta, ref.U[:, :k], ref.V[:, :k])
        out[f"gap.top{key}"] = float((ref.s[k - 1] - ref.s[k]) / ref.s[k - 1]) if k < ref.rank and ref.s[k - 1] > 0 else 1.0
    return out


def fraction_key(f: float) -> str:
    return f"{f:g}"


# ----------------------------------------------------------------------------------------------- edits


def edit_matrix(ref: SVD, target: SVD, edit: str) -> torch.Tensor:
    """The edited matrix (same dtype as the SVDs). Each edit keeps one thing of the target and restores
    one thing of the ref; every result has an exact SVD made of orthonormal bases:

    - ``directions``: ``U_ref diag(s_target) V_ref^T``: the ref's singular directions carrying the
      target's singular values (restore the rotation, keep the spectrum). If the values did not change,
      this is exactly the ref.
    - ``values``: ``U_target diag(s_ref) V_target^T``: the target's directions with the ref's values
      (restore the spectrum only).
    - ``both``: ``U_ref diag(s_ref) V_ref^T``: restore both, i.e. the ref matrix (a control).
    - ``topk:f``: restore only the top-k directions (k = round(f r)), carrying the target's top-k values:
      ``U_k diag(s_target[:k]) V_k^T + (I - U_k U_k^T) W_target (I - V_k V_k^T)`` with ``U_k``, ``V_k``
      the ref's. The second term is the target confined to the orthogonal complement of the ref's top-k
      subspaces, so the two terms have orthogonal column and row spaces: the result's singular triplets
      are exactly the ref's top-k directions with the target's top-k values, plus those of the confined
      remainder. (Pasting ``U_ref[:, :k]`` beside ``U_target[:, k:]`` instead would not give orthonormal
      bases unless the two subspaces already coincided.) ``topk:1`` equals ``directions``.
    """
    kind, f = parse_edit(edit)
    if ref.U.shape != target.U.shape or ref.V.shape != target.V.shape:
        raise ValueError("edit: ref and target matrices differ in shape")
    if kind == "directions":
        return (ref.U * target.s) @ ref.V.T
    if kind == "values":
        return (target.U * ref.s) @ target.V.T
    if kind == "both":
        return ref.matrix()
    k = top_k(ref.rank, f)
    Uk, Vk = ref.U[:, :k], ref.V[:, :k]
    w_t = target.matrix()
    rest = w_t - Uk @ (Uk.T @ w_t)
    rest = rest - (rest @ Vk) @ Vk.T
    return (Uk * target.s[:k]) @ Vk.T + rest


# ----------------------------------------------------------------------------------------- statistics


def ranks(xs: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for t in range(i, j + 1):
            out[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    if n != len(ys):
        raise ValueError("pearson: sequences differ in length")
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (NaN when either side is constant or fewer than 2 points)."""
    return pearson(ranks(xs), ranks(ys))

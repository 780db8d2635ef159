r"""Kernels and the kernel two-sample statistic MMD² (Gretton et al. 2012, JMLR 13, eq. 2–3).

.. math:: \mathrm{MMD}^2(p, q) = E\,k(x, x') + E\,k(y, y') − 2\,E\,k(x, y),
    \quad x, x' \sim p,\; y, y' \sim q.

* ``kernel="rbf"``: k(a, b) = Σ_h exp(−‖a − b‖²/(2h²)) over one or more bandwidths h, with
  the **unbiased** U-statistic (self-pairs a = a' dropped from the first two means): zero in
  expectation when p = q, so it can come out slightly negative.
* ``kernel="linear"``: k(a, b) = a·b. Its V-statistic (all pairs) has the closed form
  ‖x̄ − ȳ‖², the squared distance between the mean features: a linear kernel matches means
  only (homework 5's closed form).

One implementation serves both the sample metric :func:`visgen.metrics.mmd_rbf` and the
training loss of MMD distillation (:mod:`visgen.fewstep.mmd`): it is differentiable and
batched over leading dimensions, so ``x`` of shape (B, N, D) holds B independent sets of N
feature vectors (e.g. the H·W patches of B images) and the result has shape (B,).
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice, check_positive, check_tensor

__all__ = ["gaussian_kernel", "mmd2", "squared_distances"]


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖x_i − y_j‖² of x (..., N, D) and y (..., M, D) → (..., N, M).

    Differentiable everywhere: torch.cdist's backward is 0 at coincident points.
    """
    return torch.cdist(x, y).pow(2)


def _bandwidths(bandwidth) -> list[float]:
    hs = [bandwidth] if isinstance(bandwidth, (int, float)) else list(bandwidth)
    if not hs:
        raise ValueError("bandwidth must be a positive number or a non-empty sequence of them")
    for h in hs:
        check_positive(h, "bandwidth")
    return [float(h) for h in hs]


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, bandwidth=1.0) -> torch.Tensor:
    """k(x_i, y_j) = Σ_h exp(−‖x_i − y_j‖²/(2h²)) for x (..., N, D), y (..., M, D) → (..., N, M)."""
    d2 = squared_distances(x, y)
    return sum(torch.exp(-d2 / (2 * h**2)) for h in _bandwidths(bandwidth))


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel: str = "rbf", bandwidth=1.0) -> torch.Tensor:
    """MMD² between the sets x (..., N, D) and y (..., M, D), one value per leading index.

    ``rbf``: unbiased estimator with :func:`gaussian_kernel` (``bandwidth`` a number or a
    sequence, kernels summed). ``linear``: ‖x̄ − ȳ‖² (``bandwidth`` unused).
    """
    check_choice(kernel, "kernel", ("rbf", "linear"))
    x = check_tensor(x, "x", min_dim=2)
    y = check_tensor(y, "y", min_dim=2)
    if x.shape[-1] != y.shape[-1] or x.shape[:-2] != y.shape[:-2]:
        raise ValueError(
            "x (..., N, D) and y (..., M, D) must agree in D and in the leading dimensions, "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if kernel == "linear":
        return (x.mean(-2) - y.mean(-2)).pow(2).sum(-1)
    m, n = x.shape[-2], y.shape[-2]
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 points per set, got {m} and {n}")
    hs = _bandwidths(bandwidth)
    kxx, kyy = gaussian_kernel(x, x, hs), gaussian_kernel(y, y, hs)
    sxx = (kxx.sum((-1, -2)) - kxx.diagonal(0, -2, -1).sum(-1)) / (m * (m - 1))
    syy = (kyy.sum((-1, -2)) - kyy.diagonal(0, -2, -1).sum(-1)) / (n * (n - 1))
    return sxx + syy - 2 * gaussian_kernel(x, y, hs).mean((-1, -2))

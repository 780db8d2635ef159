import math

import pytest
import torch

from visgen.data import get_dataset
from visgen.metrics import PCAFeatures, data_floor, frechet_distance, image_metrics


def _with_moments(z, mean, cov_sqrt):
    """Samples whose *sample* mean and covariance are exactly `mean` and cov_sqrt cov_sqrtᵀ."""
    z = z - z.mean(0)
    c = torch.cov(z.T)
    w, q = torch.linalg.eigh(c)
    z = z @ (q * w.rsqrt()) @ q.T  # sample covariance I
    return mean + z @ cov_sqrt.T


def test_frechet_distance_closed_form(gen):
    d = 6
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    b = torch.randn(d, d, generator=gen, dtype=torch.float64)
    m1, m2 = (
        torch.randn(d, generator=gen, dtype=torch.float64),
        torch.randn(d, generator=gen, dtype=torch.float64),
    )
    x = _with_moments(torch.randn(500, d, generator=gen, dtype=torch.float64), m1, a)
    y = _with_moments(torch.randn(700, d, generator=gen, dtype=torch.float64), m2, b)
    s1, s2 = a @ a.T, b @ b.T
    # FD = ‖m1 − m2‖² + tr(S1 + S2 − 2 (S1^½ S2 S1^½)^½), via scipy's sqrtm as an independent check
    from scipy.linalg import sqrtm

    r1 = torch.from_numpy(sqrtm(s1.numpy()).real)
    cross = torch.from_numpy(sqrtm((r1 @ s2 @ r1).numpy()).real).trace()
    expected = (m1 - m2).pow(2).sum() + s1.trace() + s2.trace() - 2 * cross
    assert frechet_distance(x, y) == pytest.approx(float(expected), rel=1e-8)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    # diagonal covariances: ‖m1 − m2‖² + Σ (√a_i − √b_i)²
    va, vb = (
        torch.rand(d, generator=gen, dtype=torch.float64) + 0.1,
        torch.rand(d, generator=gen, dtype=torch.float64) + 0.1,
    )
    x = _with_moments(
        torch.randn(400, d, generator=gen, dtype=torch.float64), m1, torch.diag(va.sqrt())
    )
    y = _with_moments(
        torch.randn(400, d, generator=gen, dtype=torch.float64), m2, torch.diag(vb.sqrt())
    )
    expected = (m1 - m2).pow(2).sum() + (va.sqrt() - vb.sqrt()).pow(2).sum()
    assert frechet_distance(x, y) == pytest.approx(float(expected), rel=1e-8)
    with pytest.raises(ValueError, match="feature dimension"):
        frechet_distance(x, y[:, :3])


def test_pca_features_are_orthonormal_and_centred():
    x = get_dataset("digits").x
    pca = PCAFeatures(x, 16)
    f = pca(x)
    assert f.shape == (len(x), 16)
    assert torch.allclose(
        pca.components.T @ pca.components, torch.eye(16, dtype=torch.float64), atol=1e-10
    )
    assert f.mean(0).abs().max() < 1e-10
    var = f.var(0)
    assert (var[:-1] >= var[1:] - 1e-9).all()  # sorted by explained variance
    with pytest.raises(ValueError, match="shape"):
        pca(torch.zeros(2, 1, 16, 16))


def test_digits_metrics_separate_real_data_from_noise():
    floor = data_floor("digits", repeats=3)
    test = get_dataset("digits", "test")
    assert floor["n"] == 397 and floor["confidence"] > 0.9
    real = image_metrics(get_dataset("digits").x[:397], "digits")
    noise = image_metrics(
        torch.rand(397, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1, "digits"
    )
    for key in ("fd", "fd_pca16"):
        assert real[key] < floor[key] + 4 * floor[f"{key}_std"]
        assert noise[key] > 10 * floor[key]
    assert noise["confidence"] < real["confidence"]
    # the evaluation classifier itself: test accuracy (logistic regression on pixels reaches 0.98)
    labelled = image_metrics(test.x, "digits", cond=test.labels)
    assert labelled["agreement"] >= 0.95
    assert math.isclose(sum(labelled["histogram"]), 1.0)
    with pytest.raises(ValueError, match="samples must have shape"):
        image_metrics(torch.zeros(4, 3, 8, 8), "digits")

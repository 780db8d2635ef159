"""Classifier-free and classifier guidance against analytic class-conditional mixtures."""

import math

import pytest
import torch

from visgen import Denoiser
from visgen.oracles import GaussianMixture, eight_gaussians
from visgen.sampling import grids, sample_dpmpp_2m
from visgen.sampling.guidance import classifier_free_guidance, classifier_guidance
from visgen.schedules import VPLinear


def two_classes():
    """Two overlapping classes, each a sub-mixture of two components."""
    means = [[-0.6, 0.0], [0.0, 0.8], [0.6, 0.0], [0.0, -0.8]]
    return GaussianMixture(means, 0.6, labels=[0, 0, 1, 1]).to(torch.float64)


class Counting:
    """A model that records the batch size of every call."""

    def __init__(self, model):
        self.model, self.batches = model, []

    def __call__(self, x, t, cond=None):
        self.batches.append(x.shape[0])
        return self.model(x, t, cond)


def exact(gmm, sch):
    return gmm.denoiser(sch).model


@pytest.mark.parametrize("space", ["eps", "x0", "velocity"])
def test_cfg_one_batched_forward_equals_two_calls(space, gen):
    gmm, sch = eight_gaussians(dtype=torch.float64), VPLinear()
    counting = Counting(exact(gmm, sch))
    inner = Denoiser(counting, sch, "x0")
    guided = classifier_free_guidance(inner, 3.0, space=space)
    x = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    cond = torch.tensor([0, 3, 5, 7, 1, 2])
    got = guided(x, 0.4, cond)
    assert counting.batches == [12] and inner.nfe == 1 and guided.nfe == 1
    c = getattr(inner(x, 0.4, cond), space)
    u = getattr(inner(x, 0.4, torch.full((6,), -1)), space)
    assert torch.allclose(getattr(got, space), u + 3.0 * (c - u), atol=1e-12)
    # the plain combination is the same in every parametrisation (affine, weights sum to 1)
    x0_u, x0_c = inner(x, 0.4).x0, inner(x, 0.4, cond).x0
    assert torch.allclose(got.x0, x0_u + 3.0 * (x0_c - x0_u), atol=1e-10)


def test_cfg_limits_interval_and_rescale(gen):
    gmm, sch = eight_gaussians(dtype=torch.float64), VPLinear()
    inner = gmm.denoiser(sch)
    x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    cond = torch.tensor([0, 1, 2, 3, 4])
    cond_x0, uncond_x0 = inner(x, 0.6, cond).x0, inner(x, 0.6).x0
    assert torch.allclose(classifier_free_guidance(inner, 1.0)(x, 0.6, cond).x0, cond_x0)
    assert torch.allclose(classifier_free_guidance(inner, 0.0)(x, 0.6, cond).x0, uncond_x0)
    # outside the guidance interval: the conditional prediction, from a batch of B
    counting = Counting(exact(gmm, sch))
    g = classifier_free_guidance(Denoiser(counting, sch, "x0"), 4.0, interval=(0.2, 0.5))
    assert torch.allclose(g(x, 0.6, cond).x0, cond_x0) and counting.batches == [5]
    assert not torch.allclose(g(x, 0.4, cond).x0, cond_x0) and counting.batches == [5, 10]
    # rescale (Lin et al.) makes the parametrisation matter
    r_eps = classifier_free_guidance(inner, 4.0, space="eps", rescale=0.7)(x, 0.6, cond).x0
    r_x0 = classifier_free_guidance(inner, 4.0, space="x0", rescale=0.7)(x, 0.6, cond).x0
    assert (r_eps - r_x0).abs().max() > 1e-3


def _accuracy(x, target, gmm):
    """Fraction of samples whose Bayes class under the data mixture is the target."""
    log_joint = torch.stack(
        [gmm.log_prob(x, 0.0, "linear", torch.full((len(x),), y)) for y in (0, 1)], 1
    )
    hits = (log_joint.argmax(1) == target).double()
    return hits.mean().item(), hits.std().item() / math.sqrt(len(x))


def test_guided_accuracy_rises_with_the_guidance_scale(gen):
    gmm, sch = two_classes(), VPLinear()
    den = gmm.denoiser(sch)
    n = 3000
    target = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    ts = grids.logsnr(25, sch)
    acc = {}
    for w in (0.0, 1.0, 2.0, 4.0):
        guided = classifier_free_guidance(den, w)
        acc[w] = _accuracy(sample_dpmpp_2m(guided, x, ts, target), target, gmm)
    direct = _accuracy(gmm.sample(n, gen, cond=target), target, gmm)
    se = lambda a, b: 4 * math.hypot(a[1], b[1])
    assert abs(acc[0.0][0] - 0.5) < 4 * 0.5 / math.sqrt(n)  # unconditional: chance
    assert abs(acc[1.0][0] - direct[0]) < se(acc[1.0], direct)  # w = 1: the class itself
    for lo, hi in ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0)):
        assert acc[hi][0] - acc[lo][0] > se(acc[hi], acc[lo]), acc


def test_classifier_guidance_with_the_exact_classifier_is_the_conditional_score(gen):
    gmm, sch = two_classes(), VPLinear()
    den = gmm.denoiser(sch)

    def classifier(x, t):  # log p(x_t, y) for y = 0, 1: log-softmax gives log p(y | x_t)
        return torch.stack([gmm.log_prob(x, t, sch, torch.full((len(x),), y)) for y in (0, 1)], 1)

    x = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    for t in (0.1, 0.5, 0.9):
        guided = classifier_guidance(den, classifier, 1.0)(x, t, y)
        assert torch.allclose(guided.score, gmm.score(x, t, sch, y), atol=1e-9)
        assert torch.allclose(guided.x0, den(x, t, y).x0, atol=1e-9)
        plain = classifier_guidance(den, classifier, 0.0)(x, t, y)
        assert torch.allclose(plain.score, gmm.score(x, t, sch), atol=1e-12)


def test_guidance_bad_input(gen):
    den = eight_gaussians().denoiser("linear")
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="needs a condition cond"):
        classifier_free_guidance(den, 2.0)(x, 0.5)
    with pytest.raises(ValueError, match="pass null="):
        classifier_free_guidance(den, 2.0)(x, 0.5, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="interval must be"):
        classifier_free_guidance(den, 2.0, interval=(0.6, 0.2))
    with pytest.raises(ValueError, match="unknown space"):
        classifier_free_guidance(den, 2.0, space="logits")
    with pytest.raises(TypeError, match="den must be a visgen Denoiser"):
        classifier_free_guidance(lambda x, t, c: x, 2.0)
    with pytest.raises(ValueError, match="logits of shape"):
        classifier_guidance(den, lambda x, t: x[:, 0], 1.0)(x, 0.5, torch.tensor([0, 1]))

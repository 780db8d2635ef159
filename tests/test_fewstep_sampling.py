import pytest
import torch

from visgen.fewstep import sample_consistency
from visgen.metrics import energy_distance
from visgen.oracles import DiracMixture, eight_gaussians


def test_one_step_of_the_exact_denoiser_gives_the_prior_mean_and_single_dirac_is_exact(gen):
    # at t = 1 on the linear path, E[x0 | x_1] is the data mean for every x_1
    g = eight_gaussians(dtype=torch.float64)
    den = g.denoiser("linear")
    x = torch.randn(100, 2, generator=gen, dtype=torch.float64)
    out = sample_consistency(den, x, torch.tensor([1.0, 0.0]), generator=gen)
    assert den.nfe == 1 and torch.allclose(out, g.means.mean(0).expand(100, 2), atol=1e-12)
    point = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    dirac = DiracMixture(point).denoiser("linear")
    assert torch.allclose(
        sample_consistency(dirac, x, torch.tensor([0.7, 0.0])), point.expand(100, 2)
    )


def test_multistep_consistency_sampling_of_the_exact_denoiser_converges(gen):
    # with the exact x0-predictor, re-noising at many levels is ancestral-like sampling
    g = eight_gaussians()
    den = g.denoiser("linear")
    x = torch.randn(2000, 2, generator=gen)
    one = sample_consistency(den, x, torch.tensor([1.0, 0.0]), generator=gen)
    many = sample_consistency(den, x, torch.linspace(1, 0, 41), generator=gen)
    assert den.nfe == 41
    data = g.sample(2000, gen)
    assert energy_distance(many, data) < 0.01 < energy_distance(one, data)


def test_bad_grid():
    den = eight_gaussians().denoiser("linear")
    with pytest.raises(ValueError, match="ts must end at 0"):
        sample_consistency(den, torch.zeros(2, 2), torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample_consistency(den, torch.zeros(2, 2), torch.tensor([0.5, 1.0, 0.0]))


def test_method_registry_and_nfe_contract():
    from visgen.fewstep import METHODS, FewStepGenerator, register_method

    @register_method("_identity_for_test", lecture=6)
    def train(task, steps, generator):
        return FewStepGenerator(
            "identity", torch.nn.Identity(), lambda z, nfe, c, g: z * nfe, nfes=(1, 2)
        )

    try:
        student = METHODS["_identity_for_test"][1](None, 1, None)
        assert torch.equal(student.sample(torch.ones(3), 2), torch.full((3,), 2.0))
        with pytest.raises(ValueError, match=r"nfe must be one of \(1, 2\)"):
            student.sample(torch.ones(3), 4)
        with pytest.raises(ValueError, match="already registered"):
            register_method("_identity_for_test", lecture=6)(train)
        with pytest.raises(ValueError, match="unknown lecture 5"):
            register_method("other", lecture=5)
    finally:
        METHODS.pop("_identity_for_test")

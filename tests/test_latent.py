"""The KL autoencoder: reconstruction, latent scale, shape errors; latent diffusion end to end."""

import math

import pytest
import torch

from visgen.config import fast_mode
from visgen.data import get_dataset
from visgen.nn import Autoencoder, DiT
from visgen.nn.autoencoder import Posterior
from visgen.sampling import sample_euler
from visgen.sampling.guidance import classifier_free_guidance
from visgen.train import (
    asset,
    asset_key,
    autoencoder,
    make_method,
    normalize_spec,
    train_cached,
    training_data,
)

LATENT_DIT = {
    "model": {
        "name": "dit",
        "in_channels": 4,
        "size": 8,
        "patch_size": 2,
        "dim": 64,
        "depth": 4,
        "num_classes": 12,
    },
    "method": {
        "name": "fm",
        "prediction": "x0",
        "t_eps": 0.05,
        "t_sampler": "logit_normal",
        "label_dropout": 0.1,
    },
    "data": "latent:vae_shapes16",
    "train": {"steps": 1000, "batch_size": 64, "lr": 2e-3, "warmup": 50},
}


def psnr(x, y):
    """Peak signal-to-noise ratio (dB) per image for values in [−1, 1] (peak-to-peak 2)."""
    return 10 * torch.log10(4 / (x - y).pow(2).flatten(1).mean(1))


def test_posterior_kl_and_reparametrisation(gen):
    mean, logvar = torch.randn(3, 4, 2, 2, generator=gen), torch.randn(3, 4, 2, 2, generator=gen)
    q = Posterior(mean, logvar)
    var = logvar.exp()
    expected = 0.5 * (mean**2 + var - 1 - logvar).flatten(1).sum(1)
    assert torch.allclose(q.kl(), expected)
    assert torch.allclose(Posterior(torch.zeros(2, 3), torch.zeros(2, 3)).kl(), torch.zeros(2))
    noise = torch.randn(3, 4, 2, 2, generator=gen)
    assert torch.allclose(q.sample(noise), mean + var.sqrt() * noise)
    with pytest.raises(ValueError, match="noise must have the latent shape"):
        q.sample(torch.randn(3, 4, 2))


def test_fit_scale_gives_unit_latent_std(gen):
    vae = Autoencoder(3, 16, latent_channels=4, width=8, levels=1)
    x = torch.rand(50, 3, 16, 16, generator=gen) * 2 - 1
    s = vae.fit_scale(x, batch_size=16)
    z = vae.to_latent(x)
    assert z.shape == (50, 4, 8, 8)
    assert math.isclose(float(z.double().std()), 1.0, rel_tol=1e-4)
    with torch.no_grad():
        assert math.isclose(s, 1 / float(vae.encode(x).mean.double().std()), rel_tol=1e-5)
    assert torch.allclose(vae.from_latent(z), vae.decode(vae.encode(x).mean), atol=1e-5)


def test_wrong_image_and_latent_shapes_are_clear_errors():
    vae = Autoencoder(3, 16, latent_channels=4, width=8, levels=1)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 16, 16\)"):
        vae.encode(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 4, 8, 8\)"):
        vae.decode(torch.randn(2, 4, 4, 4))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 4, 8, 8\)"):
        vae.from_latent(torch.randn(2, 3, 16, 16))  # pixels passed as latents
    with pytest.raises(ValueError, match="divisible by 2\\^levels"):
        Autoencoder(3, 10, levels=2)
    with pytest.raises(ValueError, match="more latent values than input"):
        Autoencoder(1, 8, latent_channels=8, levels=1)
    # a latent DiT refuses pixels and latents of another autoencoder
    model = DiT(4, 8, patch_size=2, dim=32, heads=2)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 4, 8, 8\)"):
        model(torch.randn(2, 3, 16, 16), torch.rand(2))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 4, 8, 8\)"):
        model(torch.randn(2, 4, 4, 4), torch.rand(2))
    with pytest.raises(TypeError, match="trains an Autoencoder"):
        make_method("vae").loss(model, {"x0": torch.randn(2, 4, 8, 8)})


def test_latent_data_names_pin_the_autoencoder():
    key = asset_key("vae_shapes16")
    assert normalize_spec(LATENT_DIT)["data"] == f"latent:vae_shapes16:{key}"
    with fast_mode(False):
        assert asset_key("vae_shapes16") != key  # so FAST and full latents are cached apart
    with pytest.raises(ValueError, match="latents of 'vae_shapes16' were requested"):
        training_data("latent:vae_shapes16:stale-key")
    with pytest.raises(ValueError, match="get it with visgen.train.training_data"):
        get_dataset("latent:vae_shapes16")  # visgen.data knows no trained models


def test_vae_reconstructs_shapes():
    vae = autoencoder("vae_shapes16")
    test = get_dataset("shapes16", "test")
    with torch.no_grad():
        rec = vae.from_latent(vae.to_latent(test.x))
    quality = psnr(rec, test.x)
    # measured (600 steps, FAST): mean 27.7 dB, worst image 22.6 dB
    assert quality.mean() > 26.0 and quality.min() > 20.0
    z = training_data("latent:vae_shapes16", "test").x
    assert z.shape == (2000, 4, 8, 8)
    assert abs(float(z.std()) - 1) < 0.05  # the scale was fitted on the training split


def test_latent_diffusion_samples_decode_to_the_requested_shapes(gen):
    vae = autoencoder("vae_shapes16")
    den = train_cached(LATENT_DIT, progress=False).denoiser()
    classifier = asset("classifier_shapes16", progress=False).model
    test = get_dataset("shapes16", "test")
    labels = torch.arange(12).repeat_interleave(25)
    z = sample_euler(
        classifier_free_guidance(den, 4.0),
        torch.randn(len(labels), 4, 8, 8, generator=gen),
        torch.linspace(0.999, 0, 21),
        labels,
    )
    with torch.no_grad():
        images = vae.from_latent(z).clamp(-1, 1)
        accuracy = (classifier(images).argmax(1) == labels).double().mean().item()
        # the ceiling: the same classifier on the autoencoder's reconstructions of real images
        rec = vae.from_latent(vae.to_latent(test.x)).clamp(-1, 1)
        ceiling = (classifier(rec).argmax(1) == test.labels).double().mean().item()
    # measured (1000 steps, 20 Euler steps, w = 4): accuracy 0.71, ceiling 0.91; chance is 1/12
    assert accuracy > 0.6 and accuracy > 0.65 * ceiling

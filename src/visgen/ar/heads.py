r"""Per-token generative heads of MAR (Li et al. 2024, arXiv 2406.11838, §3): a small network
that models p(x_i | z_i) — a continuous token x_i ∈ R^D given the backbone's vector z_i — by
flow matching or diffusion, so that autoregression needs no vector quantisation.

The network (:class:`TokenHead`, MAR's ``SimpleMLPAdaLN``): x_t is embedded, c = MLP(sin(t)) +
W z (sinusoidal time embedding, Transformer §3.5), then residual MLP blocks with adaptive layer
norm,

.. math:: h ← h + g ⊙ \mathrm{MLP}\big((1 + s) ⊙ \mathrm{LN}(h) + b\big), \qquad
          (b, s, g) = W_i \,\mathrm{SiLU}(c),

and a final adaLN layer (shift, scale) + linear. The modulations W_i and the output linear start
at **zero**, so a fresh head outputs exactly 0 and every block starts as the identity.

Two parametrisations, one network:

* ``prediction="velocity"`` — **flow matching** (homework 6's head, FlowAR-style, MAR issue #82):
  x_t = (1 − t) x + t ε, t ~ logit-normal(0, 1) (:func:`head_times`), loss ‖v̂ − (ε − x)‖² (the v-loss,
  :func:`visgen.objectives.flow_matching_loss`); sampled by Euler from t = 1 (noise) to 0.
* ``prediction="eps"`` — **diffusion** (MAR's DiffLoss): the cosine VP schedule, t ~ U[0, 1],
  loss ‖ε̂ − ε‖²; sampled by DDIM on a log-SNR grid.

**CFG inside the head** (MAR §3.4): the batch holds the conditional z's first and the
unconditional ones (null class) second; :meth:`TokenHead.cfg_forward` evaluates both halves from
the *same* x_t and returns u + w(c − u) for both, so they stay identical through the sampler.
A temperature τ scales the starting noise ε (MAR scales its sampling noise).

CPU-scale simplification: a continuous-time cosine schedule for the diffusion head (MAR: 1000
discrete DDPM steps, 100 respaced at sampling).
"""

from __future__ import annotations

import torch
from torch import nn

from visgen._checks import check_choice, check_positive, check_tensor
from visgen.nn.embeddings import SinusoidalEmbedding
from visgen.objectives import diffusion_loss, flow_matching_loss
from visgen.param import Denoiser
from visgen.sampling import logsnr, sample_ddim, sample_euler, uniform

__all__ = ["HeadBlock", "TokenHead", "head_loss", "head_times", "sample_head"]

SCHEDULES = {"velocity": "linear", "eps": "vp_cosine"}


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class HeadBlock(nn.Module):
    """h + gate ⊙ MLP((1 + scale) ⊙ LN(h) + shift), (shift, scale, gate) from SiLU(c)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.ada = nn.Sequential(nn.SiLU(), _zero(nn.Linear(width, 3 * width)))

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada(c).chunk(3, -1)
        return h + gate * self.mlp(self.norm(h) * (1 + scale) + shift)


class TokenHead(nn.Module):
    """``TokenHead(token_dim, cond_dim, width=128, depth=3, prediction="velocity")``:
    ``head(x_t, t, z)`` for x_t (M, token_dim), t (M,) in [0, 1] (t = 1 noise), z (M, cond_dim)
    → the prediction (M, token_dim)."""

    def __init__(
        self,
        token_dim: int,
        cond_dim: int,
        width: int = 128,
        depth: int = 3,
        prediction: str = "velocity",
    ):
        super().__init__()
        for name, value in (("token_dim", token_dim), ("cond_dim", cond_dim), ("width", width)):
            check_positive(value, name, integer=True)
        check_positive(depth, "depth", integer=True)
        check_choice(prediction, "prediction", tuple(SCHEDULES))
        self.config = {
            "token_dim": token_dim,
            "cond_dim": cond_dim,
            "width": width,
            "depth": depth,
            "prediction": prediction,
        }
        self.token_dim, self.cond_dim, self.prediction = token_dim, cond_dim, prediction
        self.schedule = SCHEDULES[prediction]
        self.input = nn.Linear(token_dim, width)
        self.time = nn.Sequential(
            SinusoidalEmbedding(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width)
        )
        self.cond = nn.Linear(cond_dim, width)
        self.blocks = nn.ModuleList(HeadBlock(width) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), _zero(nn.Linear(width, 2 * width)))
        self.out = _zero(nn.Linear(width, token_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.token_dim:
            raise ValueError(f"x must have shape (M, {self.token_dim}), got {tuple(x.shape)}")
        if z is None or z.shape != (x.shape[0], self.cond_dim):
            got = None if z is None else tuple(z.shape)
            raise ValueError(f"z must have shape ({x.shape[0]}, {self.cond_dim}), got {got}")
        c = self.time(t) + self.cond(z)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_ada(c).chunk(2, -1)
        return self.out(self.final_norm(h) * (1 + scale) + shift)

    def cfg_forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor, scale: float):
        """CFG in MAR's batch layout: rows [conditional; unconditional] of z, evaluated at the
        *first* half of x for both; returns u + w(c − u), repeated for both halves."""
        if x.shape[0] % 2:
            raise ValueError(
                "cfg_forward needs an even batch: conditional rows, then unconditional"
            )
        half = x[: x.shape[0] // 2]
        cond, uncond = self(torch.cat([half, half]), t, z).chunk(2)
        guided = uncond + scale * (cond - uncond)
        return torch.cat([guided, guided])

    def denoiser(self, cfg: float = 1.0) -> Denoiser:
        """The head as a :class:`~visgen.param.Denoiser` (guided by ``cfg`` ≠ 1 through
        :meth:`cfg_forward`, in which case rows come in [conditional; unconditional] pairs)."""
        if cfg == 1.0:
            return Denoiser(self, self.schedule, self.prediction)
        return Denoiser(
            lambda x, t, z: self.cfg_forward(x, t, z, cfg), self.schedule, self.prediction
        )


def head_times(u: torch.Tensor, prediction: str) -> torch.Tensor:
    """Training times from uniforms u ∈ (0, 1) by the inverse CDF: logit-normal(0, 1) for flow
    matching, t = sigmoid(Φ⁻¹(u)) (SD3's density; homework 6), uniform t = u for diffusion."""
    check_choice(prediction, "prediction", tuple(SCHEDULES))
    if prediction == "eps":
        return u
    return torch.sigmoid(torch.special.ndtri(u.clamp(1e-6, 1 - 1e-6)))


def head_loss(head: TokenHead, x0: torch.Tensor, z: torch.Tensor, t, noise) -> torch.Tensor:
    """Per-token loss (M,) of clean tokens x0 (M, D) given conditions z (M, C): the v-loss
    (flow matching) or the ε-loss (diffusion) at times t (M,) with noise ε (M, D)."""
    den = head.denoiser()
    if head.prediction == "velocity":
        return flow_matching_loss(den, x0, t=t, noise=noise, cond=z, reduction="none")
    return diffusion_loss(den, x0, t=t, noise=noise, target="eps", cond=z, reduction="none")


@torch.no_grad()
def sample_head(
    head: TokenHead,
    z: torch.Tensor,
    steps: int,
    *,
    cfg: float = 1.0,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Tokens x ~ p(x | z) (M, D) by ``steps`` head evaluations from x_1 = τ ε.

    With ``cfg`` ≠ 1, z is (2M, C) — M conditional rows, then their M unconditional rows —
    and both halves start from the same noise. Flow matching: Euler on a uniform grid;
    diffusion: DDIM on a log-SNR grid.
    """
    check_tensor(z, "z", min_dim=2)
    check_positive(steps, "steps", integer=True)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    m = z.shape[0] // 2 if cfg != 1.0 else z.shape[0]
    x = temperature * torch.randn(m, head.token_dim, generator=generator, dtype=z.dtype)
    if cfg != 1.0:
        x = torch.cat([x, x])
    den = head.denoiser(cfg)
    if head.prediction == "velocity":
        x = sample_euler(den, x, uniform(steps), z)
    else:
        x = sample_ddim(den, x, logsnr(steps, head.schedule), z)
    return x[:m]

r"""Vector quantisation: the discrete bottleneck of VQ-VAE (van den Oord et al. 2017, arXiv
1711.00937, §3.1–3.2) and of every tokenizer of lecture 8.

An encoder output z_e ∈ R^D is replaced by its nearest codebook vector,

.. math:: z_q = e_k, \qquad k = \arg\min_j \|z_e − e_j\|^2 ,

and, since argmin has no gradient, the **straight-through estimator** passes z_e + sg(z_q − z_e)
forward: the value is z_q, the gradient is copied to z_e (eq. 3). The codebook and the encoder
are pulled together by (eq. 3, terms 2 and 3)

.. math:: L_{VQ} = \underbrace{\|sg[z_e] − e\|^2}_{\text{codebook}} +
          β\,\underbrace{\|z_e − sg[e]\|^2}_{\text{commitment}} .

Remedies for **dead codes** (codes no encoder output selects, so the codebook loss never moves
them):

* **EMA codebook** (VQ-VAE App. A.1; Razavi et al. 2019, arXiv 1906.00446, eq. 5–7): the
  codebook loss is replaced by moving averages N_k ← γ N_k + (1 − γ) n_k,
  m_k ← γ m_k + (1 − γ) Σ_{i: k_i = k} z_i, e_k = m_k / N̂_k (N̂ Laplace-smoothed) — k-means
  run online;
* **k-means initialisation** (SoundStream, Zeghidour et al. 2021, arXiv 2107.03312, §3.2): the
  codebook starts at the k-means centroids of the first training batch;
* **dead-code restart** (Jukebox, Dhariwal et al. 2020, arXiv 2005.00341, §2.3): a code whose
  EMA usage N_k falls below a threshold is moved onto a random encoder output of the batch.

:func:`codebook_usage` and :func:`perplexity` measure collapse: usage is the share of codes
selected at least once, perplexity exp(H(p)) of the code histogram p is the effective number of
codes (K when all are used equally).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visgen._checks import check_positive, check_tensor

__all__ = ["VQOutput", "VectorQuantizer", "codebook_usage", "kmeans", "perplexity", "psnr"]


@dataclass
class VQOutput:
    """What a quantiser returns: the straight-through z_q (shaped like z), code indices
    (z's shape without the channel axis) and the per-sample loss terms (B,)."""

    z_q: torch.Tensor
    indices: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor


def kmeans(x: torch.Tensor, k: int, iters: int = 10, generator=None) -> torch.Tensor:
    """Lloyd's k-means on x (N, D): k centroids, started at k distinct random rows of x
    (N ≥ k); a cluster that empties keeps its centroid."""
    check_positive(k, "k", integer=True)
    x = check_tensor(x, "x", min_dim=2)
    if x.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} points, got {x.shape[0]}")
    centroids = x[torch.randperm(x.shape[0], generator=generator)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(1)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


def _histogram(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    check_positive(num_codes, "num_codes", integer=True)
    if not isinstance(indices, torch.Tensor) or indices.is_floating_point():
        raise TypeError("indices must be an integer tensor of code indices")
    if indices.numel() == 0:
        raise ValueError("indices is empty")
    if indices.min() < 0 or indices.max() >= num_codes:
        raise ValueError(f"indices must lie in [0, {num_codes - 1}]")
    counts = torch.bincount(indices.flatten(), minlength=num_codes).double()
    return counts / counts.sum()


def codebook_usage(indices: torch.Tensor, num_codes: int) -> float:
    """Share of the ``num_codes`` codes that occur at least once in ``indices``."""
    return float((_histogram(indices, num_codes) > 0).double().mean())


def perplexity(indices: torch.Tensor, num_codes: int) -> float:
    """exp(−Σ_k p_k log p_k) of the code histogram: 1 (collapse) … ``num_codes`` (uniform)."""
    p = _histogram(indices, num_codes)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio 10 log10(range² / MSE) in dB, images in [−1, 1] (range 2)."""
    x, y = check_tensor(x, "x"), check_tensor(y, "y")
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    mse = float((x.double() - y.double()).pow(2).mean())
    return (
        float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(data_range**2 / mse)).item()
    )


class VectorQuantizer(nn.Module):
    """A codebook of ``num_codes`` vectors of size ``dim``.

    Args:
        beta: weight of the commitment loss (0.25 in VQ-VAE).
        ema_decay: γ of the EMA codebook; 0 trains the codebook by the codebook loss instead.
        kmeans_init: set the codebook to k-means centroids of the first training batch.
        restart_below: with the EMA codebook, restart codes whose EMA count N_k (expected
            selections per batch) drops below this; 0 disables restarts.
        cosine: look codes up by cosine similarity, argmax_j ⟨z/‖z‖, e_j/‖e_j‖⟩ (ViT-VQGAN's
            l2-normalised lookup, Yu et al. 2021, arXiv 2110.04627, §3.2; VAR's
            ``using_znorm``): small vectors (the coarse residuals of VAR) still spread over
            the codes; the code vectors themselves stay unnormalised.

    ``forward(z)`` quantises z (B, D, H, W) or (B, D) along the channel axis D. The pieces are
    separate methods (:meth:`nearest`, :meth:`lookup`, :meth:`update`) so that the multi-scale
    quantiser of VAR (:mod:`visgen.ar.multiscale`) shares one codebook across scales. Training
    updates (k-means, EMA, restarts) happen only in ``train()`` mode, seeded by a step counter.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        beta: float = 0.25,
        ema_decay: float = 0.0,
        kmeans_init: bool = False,
        restart_below: float = 0.0,
        cosine: bool = False,
    ):
        super().__init__()
        if not isinstance(num_codes, int) or isinstance(num_codes, bool) or num_codes < 1:
            raise ValueError(f"num_codes (codebook size) must be a positive int, got {num_codes!r}")
        check_positive(dim, "dim", integer=True)
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
        if restart_below < 0 or (restart_below > 0 and ema_decay == 0):
            raise ValueError(
                "restart_below must be >= 0 and needs the EMA codebook (ema_decay > 0)"
            )
        self.num_codes, self.dim, self.beta = num_codes, dim, beta
        self.ema_decay, self.kmeans_init, self.restart_below = ema_decay, kmeans_init, restart_below
        self.cosine = cosine
        init = torch.empty(num_codes, dim).uniform_(-1 / num_codes, 1 / num_codes)
        self.codebook = nn.Parameter(init, requires_grad=ema_decay == 0)
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("code_sum", init.clone())
        self.register_buffer("initialised", torch.tensor(not kmeans_init))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    # --- the pieces -------------------------------------------------------------------------
    def flatten(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, ...) → (N, D): one row per position."""
        check_tensor(z, "z", min_dim=2)
        if z.shape[1] != self.dim:
            raise ValueError(f"z must have {self.dim} channels (dim 1), got shape {tuple(z.shape)}")
        return z.movedim(1, -1).reshape(-1, self.dim)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """argmin_j ‖z − e_j‖² (or argmax cosine) for rows z of flat (N, D)."""
        e = self.codebook
        if self.cosine:
            return (F.normalize(flat, dim=1) @ F.normalize(e, dim=1).T).argmax(1)
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.T + e.pow(2).sum(1)
        return d.argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors e_k for integer indices of any shape: (..., D)."""
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point():
            raise TypeError("indices must be an integer tensor of code indices")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.num_codes):
            raise ValueError(f"indices must lie in [0, {self.num_codes - 1}]")
        return F.embedding(indices, self.codebook)

    @torch.no_grad()
    def update(self, flat: torch.Tensor, indices: torch.Tensor, weights=None) -> None:
        """One training step of the codebook itself: EMA of the assigned vectors (optionally
        weighted per row) and dead-code restarts (EMA codebook only); counts training steps,
        which seed the restarts."""
        if not self.training:
            return
        self.steps += 1
        if self.ema_decay == 0:
            return
        g = self.ema_decay
        onehot = F.one_hot(indices, self.num_codes).to(flat.dtype)
        if weights is not None:
            onehot = onehot * weights[:, None]
        self.cluster_size.mul_(g).add_(onehot.sum(0), alpha=1 - g)
        self.code_sum.mul_(g).add_(onehot.T @ flat, alpha=1 - g)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (n + self.num_codes * 1e-5) * n
        self.codebook.copy_(self.code_sum / smoothed[:, None])
        if self.restart_below > 0:
            dead = (self.cluster_size < self.restart_below).nonzero().squeeze(1)
            if len(dead):
                gen = torch.Generator().manual_seed(int(self.steps))
                pick = flat[torch.randint(0, flat.shape[0], (len(dead),), generator=gen)]
                self.codebook[dead] = pick
                self.code_sum[dead] = pick * self.restart_below
                self.cluster_size[dead] = self.restart_below

    @torch.no_grad()
    def maybe_init(self, flat: torch.Tensor) -> None:
        """k-means initialisation on the first training batch (once)."""
        if self.training and not bool(self.initialised):
            gen = torch.Generator().manual_seed(0)
            centroids = kmeans(flat.detach(), self.num_codes, generator=gen)
            self.codebook.copy_(centroids)
            self.code_sum.copy_(centroids)
            self.cluster_size.fill_(1.0)
            self.initialised.fill_(True)

    def losses(self, z: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample codebook ‖sg[z] − q‖² and commitment β‖z − sg[q]‖² losses (B,); the
        codebook term is 0 with the EMA codebook (the EMA moves the codes instead)."""
        commit = self.beta * (z - q.detach()).pow(2).flatten(1).mean(1)
        if self.ema_decay > 0:
            return torch.zeros_like(commit), commit
        return (z.detach() - q).pow(2).flatten(1).mean(1), commit

    # --- the whole step ---------------------------------------------------------------------
    def forward(self, z: torch.Tensor) -> VQOutput:
        flat = self.flatten(z)
        self.maybe_init(flat)
        indices = self.nearest(flat.detach())
        q = self.lookup(indices).reshape(*z.movedim(1, -1).shape).movedim(-1, 1)
        codebook, commit = self.losses(z, q)
        self.update(flat.detach(), indices)
        z_q = z + (q - z).detach()  # straight-through: value q, gradient to z
        return VQOutput(z_q, indices.reshape(z.shape[0], *z.shape[2:]), codebook, commit)

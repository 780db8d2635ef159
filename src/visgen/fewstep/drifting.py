r"""Drifting Models (Deng, Li, Li, Du, He 2026, arXiv 2602.04770): a one-step generator trained
by following a kernel drift field.

A generator x = f_θ(z) is trained so that its samples move along the drift field
V_{p,q}(x) = V⁺_p(x) − V⁻_q(x) (paper eq. 8–10):

.. math::
    V^+_p(x) = \frac{E_{y^+\sim p}[k(x, y^+)(y^+ − x)]}{E_{y^+\sim p}[k(x, y^+)]}, \qquad
    V^-_q(x) = \frac{E_{y^-\sim q}[k(x, y^-)(y^- − x)]}{E_{y^-\sim q}[k(x, y^-)]},

attraction to the data p (positives) and repulsion from the generated distribution q
(negatives: the other samples of the batch, **self excluded**). V is antisymmetric,
V_{p,q} = −V_{q,p}, so V ≡ 0 when q = p. The loss is the fixed-point regression
‖f_θ(z) − sg(f_θ(z) + V(f_θ(z)))‖² (eq. 6): its gradient moves each sample by V, and no
gradient flows through V.

Kernels: the paper's k(x, y) = exp(−‖x − y‖/τ) (``laplace``), and the Gaussian
exp(−‖x − y‖²/(2τ²)), for which V⁺ − V⁻ is exactly the difference of two empirical ideal
denoisers, D*_p(x; τ) − D*_q(x; τ) (lecture 7: drifting ≈ non-parametric DMD; tested against
:class:`visgen.oracles.DiracMixture`). ``coupling="row"`` normalises V⁺ and V⁻ separately
as above; ``"joint"`` is the paper's Algorithm 2: softmax over positives and negatives
together, normalised over both the row (per x) and the column (per y) — A = √(row · col) —
then W⁺ = A⁺ Σ A⁻, W⁻ = A⁻ Σ A⁺ and V = W⁺ y⁺ − W⁻ y⁻. Several temperatures are used at
once, each field divided by its RMS before summing (App. A.6, eq. 24–25).

Distances are measured per coordinate, ‖x − y‖/√D, so one set of temperatures suits points
and 8×8 images (the paper normalises feature scales the same way, eq. 20–21). CPU-sized
simplification: the kernel acts on raw samples, not on a pretrained encoder's features.
"""

from __future__ import annotations

import math

import torch

from visgen._checks import check_choice, check_positive, check_tensor
from visgen.fewstep.base import FewStepGenerator, Task, register_method
from visgen.fewstep.student import (
    Stopwatch,
    as_generator,
    check_steps,
    seeded_init,
    student_from_teacher,
)
from visgen.nn import MLP, UNet
from visgen.param import Denoiser

__all__ = ["drift_field", "multi_temperature_drift", "train_drifting"]


def _check_sets(x, positives, negatives):
    x = check_tensor(x, "x", min_dim=2)
    positives = check_tensor(positives, "positives", min_dim=2)
    if negatives is not None:
        negatives = check_tensor(negatives, "negatives", min_dim=2)
    neg_shape = x.shape if negatives is None else negatives.shape
    if x.dim() != 2 or not x.shape[1:] == positives.shape[1:] == neg_shape[1:]:
        raise ValueError(
            "x, positives and negatives must be (N, D), (P, D), (M, D) with one D, got "
            f"{tuple(x.shape)}, {tuple(positives.shape)}, {tuple(neg_shape)}"
        )
    if negatives is None and x.shape[0] < 2:
        raise ValueError("with negatives=None (the batch itself) x needs at least 2 samples")
    return x, positives, negatives


def _distances(x, positives, negatives):
    """Per-coordinate distances ‖x − y‖/√D to positives and negatives (self pairs: +inf)."""
    scale = math.sqrt(x.shape[1])
    d_pos = torch.cdist(x, positives) / scale
    if negatives is not None:
        return d_pos, torch.cdist(x, negatives) / scale, negatives
    d_neg = torch.cdist(x, x) / scale
    return d_pos, d_neg.fill_diagonal_(math.inf), x


def _drift(d_pos, d_neg, positives, negatives, temperature, kernel, coupling):
    check_positive(temperature, "temperature")
    if kernel == "gaussian":
        pos, neg = -d_pos.pow(2) / (2 * temperature**2), -d_neg.pow(2) / (2 * temperature**2)
    else:
        pos, neg = -d_pos / temperature, -d_neg / temperature
    if coupling == "row":
        return torch.softmax(pos, 1) @ positives - torch.softmax(neg, 1) @ negatives
    logits = torch.cat([pos, neg], 1)
    a = torch.exp(
        logits - 0.5 * (logits.logsumexp(1, keepdim=True) + logits.logsumexp(0, keepdim=True))
    )
    a_pos, a_neg = a[:, : positives.shape[0]], a[:, positives.shape[0] :]
    w_pos = a_pos * a_neg.sum(1, keepdim=True)
    w_neg = a_neg * a_pos.sum(1, keepdim=True)
    return w_pos @ positives - w_neg @ negatives


@torch.no_grad()
def drift_field(
    x: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    *,
    temperature: float,
    kernel: str = "laplace",
    coupling: str = "joint",
) -> torch.Tensor:
    """V(x) (N, D) for samples x (N, D), positives (P, D) and negatives (M, D).

    ``negatives=None`` uses x itself as the negatives with each sample's own pair masked.
    ``kernel``: ``laplace`` (paper) or ``gaussian``; ``coupling``: ``joint`` (paper Alg. 2)
    or ``row`` (V⁺ and V⁻ normalised separately).
    """
    check_choice(kernel, "kernel", ("laplace", "gaussian"))
    check_choice(coupling, "coupling", ("joint", "row"))
    x, positives, negatives = _check_sets(x, positives, negatives)
    d_pos, d_neg, negatives = _distances(x, positives, negatives)
    return _drift(d_pos, d_neg, positives, negatives, temperature, kernel, coupling)


@torch.no_grad()
def multi_temperature_drift(
    x,
    positives,
    negatives=None,
    *,
    temperatures=(0.02, 0.05, 0.2),
    kernel: str = "laplace",
    coupling: str = "joint",
) -> torch.Tensor:
    """Σ_τ V_τ / RMS(V_τ): the drift at each temperature, normalised to unit RMS, summed (App. A.6)."""
    check_choice(kernel, "kernel", ("laplace", "gaussian"))
    check_choice(coupling, "coupling", ("joint", "row"))
    temperatures = list(temperatures)
    if not temperatures:
        raise ValueError("temperatures must hold at least one positive temperature")
    x, positives, negatives = _check_sets(x, positives, negatives)
    d_pos, d_neg, negatives = _distances(x, positives, negatives)
    total = torch.zeros_like(x)
    for tau in temperatures:
        v = _drift(d_pos, d_neg, positives, negatives, tau, kernel, coupling)
        total += v / v.pow(2).mean().sqrt().clamp_min(1e-12)
    return total


def _drift_by_class(x, positives, x_labels, pos_labels, **kw) -> torch.Tensor:
    """Class-conditional drift: positives and negatives of x's own class only.

    A sample alone in its class in the batch has no negatives, and Algorithm 2's field is
    then exactly 0 (W⁺ = A⁺ Σ A⁻ = 0: no repulsion, no attraction); so is a class without
    positives. Such samples get no update this step.
    """
    if x_labels is None:
        return multi_temperature_drift(x, positives, **kw)
    v = torch.zeros_like(x)
    for c in x_labels.unique():
        i, j = x_labels == c, pos_labels == c
        if i.sum() > 1 and j.any():
            v[i] = multi_temperature_drift(x[i], positives[j], **kw)
    return v


@register_method("drifting", lecture=7)
def train_drifting(
    task: Task,
    steps: int,
    generator: torch.Generator,
    *,
    batch_size: int = 512,
    temperatures=(0.02, 0.05, 0.2),
    lr: float = 1e-3,
    width: int = 128,
    depth: int = 3,
) -> FewStepGenerator:
    """Train a one-step Drifting generator on ``task.data`` (the teacher is not used).

    Each step draws a batch of prior noise and a batch of positives of the same classes,
    computes the multi-temperature drift at the generated samples (negatives: the rest of the
    batch of the same class) and regresses f_θ(z) onto f_θ(z) + V. The generator is called
    at t = 1 and exposed as an x0-predicting denoiser, so the shared consistency sampler runs
    its single step: a fresh :class:`~visgen.nn.MLP` (``width``, ``depth``), or for a
    convolutional (:class:`~visgen.nn.UNet`) teacher a copy of the teacher network, whose
    one-step prediction starts as the teacher's E[x0 | noise] (the paper trains its
    convolutional generator from scratch; the copy is the course's common start for
    students of a network teacher).
    """
    check_steps(steps)
    with seeded_init(generator):
        if isinstance(task.teacher.model, UNet):
            student = student_from_teacher(task)
        else:
            net = MLP(task.shape, width, depth, num_classes=task.num_classes or 0)
            student = Denoiser(net, task.teacher.schedule, "x0")
    net = student.model
    opt = torch.optim.Adam(net.parameters(), lr=lr, foreach=True)
    watch = Stopwatch(batch_size=batch_size, temperatures=list(temperatures), lr=lr)
    for _ in range(steps):
        positives, labels = task.data(batch_size, generator)
        z = torch.randn((batch_size, *task.shape), generator=generator)
        x = student(z, 1.0, labels).x0
        flat = x.detach().flatten(1)
        v = _drift_by_class(flat, positives.flatten(1), labels, labels, temperatures=temperatures)
        loss = (x - (x.detach() + v.reshape(x.shape))).pow(2).flatten(1).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        watch.log(drift_rms=v.pow(2).mean().sqrt())
    return as_generator("drifting", student, nfes=(1,), info=watch.info())

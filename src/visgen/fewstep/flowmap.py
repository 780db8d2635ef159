r"""Flow maps: the jump Ψ_{t→r} along the probability-flow ODE, in the average-velocity form.

For the PF-ODE dx/dt = v(x, t) (course time: t = 1 noise, t = 0 data) the flow map from t to
an earlier time r ≤ t is

.. math:: Ψ_{t→r}(x_t) = x_t − (t − r)\, u(x_t, t, r), \qquad
          u(x_t, t, r) = \frac{1}{t − r} \int_r^t v(x_τ, τ)\, dτ,

u being the *average velocity* over [r, t] (MeanFlow, Geng et al. 2025, arXiv 2505.13447,
eq. 3–4, with their (r, t) written here as (t, r) of the course). A :class:`FlowMap`
parametrises f_θ(x, t, r) = x − (t − r) u_θ(x, t, r), so the boundary condition
f(x, t, t) = x holds exactly for any network (the trivial-solution guard of consistency
models, Song et al. 2023, arXiv 2303.01469, §3). Every flow-map model of lecture 6 is one:

* consistency models learn r = 0 only: f(x, t, 0) is the x0-prediction (its
  :meth:`FlowMap.denoiser` feeds :func:`visgen.fewstep.sample_consistency`);
* multi-boundary consistency models learn r = the segment start below t;
* MeanFlow (and CTM, Shortcut models) learn every r ≤ t; :func:`sample_flowmap` chains jumps.

:class:`FlowMapNet` turns any :mod:`visgen.nn` network (MLP, UNet) into the two-time network
u_θ(x, t, r, cond): the network's own embedding of (t, cond) plus an embedding of the gap
t − r (MeanFlow's best conditioning, Table 1c), whose last layer starts at zero so that a
student initialised from a flow-matching teacher starts as u = v.
"""

from __future__ import annotations

import torch
from torch import nn

from visgen._checks import batch_time, check_tensor
from visgen.fewstep.student import seeded_init
from visgen.nn import MODELS, build_model
from visgen.nn.embeddings import ConditionEmbedding, SinusoidalEmbedding
from visgen.param import Denoiser
from visgen.sampling.grids import check_grid
from visgen.schedules import Schedule, get_schedule

__all__ = ["FlowMap", "FlowMapNet", "flowmap_student", "sample_flowmap"]


class _TwoTimeEmbedding(nn.Module):
    """(t, t − r) packed as (B, 2) → the base embedding of (t, cond) + an embedding of t − r."""

    def __init__(self, inner: ConditionEmbedding):
        super().__init__()
        dim = inner.time[-1].out_features
        freq_dim = inner.time[1].in_features
        self.inner = inner
        self.gap = nn.Sequential(
            SinusoidalEmbedding(freq_dim), nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        nn.init.zeros_(self.gap[-1].weight)
        nn.init.zeros_(self.gap[-1].bias)

    def forward(self, times: torch.Tensor, cond=None) -> torch.Tensor:
        return self.inner(times[:, 0], cond) + self.gap(times[:, 1])


class FlowMapNet(nn.Module):
    """``FlowMapNet(base)``: u_θ(x, t, r, cond) from a :mod:`visgen.nn` network config ``base``.

    The base network (e.g. ``{"name": "mlp", "shape": [2]}``) keeps its architecture; its
    time embedding is replaced by the two-time embedding of (t, t − r). Called as
    ``net(x, t, r, cond=None)`` with t, r of shape (B,). Rebuilt from ``config`` by
    :func:`visgen.nn.build_model` (name ``"flowmap"``).
    """

    def __init__(self, base: dict):
        super().__init__()
        net = build_model(dict(base))
        if not isinstance(getattr(net, "embed", None), ConditionEmbedding):
            raise TypeError(
                f"base must be a visgen.nn network with a ConditionEmbedding 'embed' "
                f"(mlp, unet), got {base.get('name')!r}"
            )
        net.embed = _TwoTimeEmbedding(net.embed)
        self.net = net
        self.config = {"name": "flowmap", "base": net.config}

    def forward(self, x: torch.Tensor, t: torch.Tensor, r: torch.Tensor, cond=None):
        return self.net(x, torch.stack([t, t - r], 1), cond)

    def init_from(self, teacher: nn.Module) -> FlowMapNet:
        """Copy the weights of a one-time network of the same config (e.g. the flow-matching
        teacher). The gap embedding stays zero, so u_θ(x, t, r) = v_teacher(x, t) for all r."""
        if getattr(teacher, "config", None) != self.config["base"]:
            raise ValueError(
                f"teacher config {getattr(teacher, 'config', None)} differs from the base "
                f"network {self.config['base']}"
            )
        state = {
            (f"embed.inner.{k[6:]}" if k.startswith("embed.") else k): v
            for k, v in teacher.state_dict().items()
        }
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("embed.gap.") for k in missing):
            raise ValueError(f"weights do not match: missing {missing}, unexpected {unexpected}")
        return self


MODELS["flowmap"] = FlowMapNet


class FlowMap:
    """f(x, t, r) = x − (t − r) u(x, t, r): a network of average velocity as a flow map.

    Args:
        net: ``net(x, t, r, cond) -> u`` shaped like x (a :class:`FlowMapNet`, or any callable,
            e.g. a closed-form oracle).
        schedule: the schedule of the PF-ODE the map follows (default flow matching).

    ``fm(x, t, r, cond)`` evaluates the network once (one NFE, counted in ``fm.nfe``); t and
    r are scalars or (B,) tensors with r ≤ t (r = t is the exact identity).
    """

    def __init__(self, net, schedule: Schedule | str = "linear"):
        if not callable(net):
            raise TypeError(f"net must be callable as net(x, t, r, cond), got {type(net).__name__}")
        self.net = net
        self.schedule = get_schedule(schedule)
        self.nfe = 0

    def _times(self, x, t, r):
        check_tensor(x, "x", min_dim=2, finite=False)
        t, r = batch_time(t, x, "t"), batch_time(r, x, "r")
        if (r > t).any():
            bad = int(torch.nonzero(r > t)[0, 0])
            raise ValueError(
                f"a flow map jumps from t towards the data: need r <= t, got t={t[bad].item():.6g}"
                f" < r={r[bad].item():.6g} at index {bad}"
            )
        return t, r

    def average_velocity(self, x: torch.Tensor, t, r, cond=None) -> torch.Tensor:
        """u(x, t, r), the mean of the PF-ODE velocity over [r, t] along the trajectory of x."""
        t, r = self._times(x, t, r)
        self.nfe += 1
        u = self.net(x, t, r, cond)
        if u.shape != x.shape:
            raise ValueError(f"net returned shape {tuple(u.shape)} for input {tuple(x.shape)}")
        return u

    def __call__(self, x: torch.Tensor, t, r, cond=None) -> torch.Tensor:
        t, r = self._times(x, t, r)
        gap = (t - r).reshape(-1, *[1] * (x.dim() - 1))
        return x - gap * self.average_velocity(x, t, r, cond)

    def denoiser(self) -> Denoiser:
        """The jump to the data, x̂0 = f(x, t, 0), as an x0-predicting Denoiser (its own NFE count)."""
        return Denoiser(
            lambda x, t, cond=None: self(x, t, torch.zeros_like(t), cond), self.schedule, "x0"
        )

    def __repr__(self) -> str:
        return f"FlowMap({type(self.net).__name__}, {self.schedule!r})"


@torch.no_grad()
def sample_flowmap(fm: FlowMap, x: torch.Tensor, ts, cond=None, *, callback=None) -> torch.Tensor:
    """Chain flow-map jumps over a strictly decreasing grid: x ← f(x, t_i, t_{i+1}).

    Deterministic; ``len(ts) − 1`` NFE. ``[1, 0]`` is one-step generation (MeanFlow's
    x = ε − u(ε, 1, 0)); ``[1, 0.75, 0.5, 0.25, 0]`` samples a 4-segment multi-boundary model
    (each jump lands on the next boundary: a plain 4-step DDIM/Euler with the student's u).
    ``callback(i, t, x)`` sees the state before jump i.
    """
    times = check_grid(ts).tolist()
    for i, (t, r) in enumerate(zip(times[:-1], times[1:])):
        if callback is not None:
            callback(i, t, x)
        x = fm(x, t, r, cond)
    return x


def flowmap_student(
    task, base: dict | None = None, *, init_from_teacher: bool = True, generator=None
) -> FlowMap:
    """A :class:`FlowMapNet` student for ``task`` in the teacher's schedule.

    ``base`` defaults to the teacher network's own config (a trained :mod:`visgen.nn` teacher)
    or, for an analytic teacher, an MLP of width 128 and depth 3 (the size of the ``fm_2d``
    teacher). With ``init_from_teacher`` and a flow-matching velocity teacher of the same
    config, the student starts as the teacher (u_θ = v), as consistency distillation does
    (Song et al. 2023, §6); otherwise the weights are drawn from ``generator``.
    """
    teacher = task.teacher
    teacher_net = teacher.model if isinstance(teacher.model, nn.Module) else None
    if base is None:
        base = getattr(teacher_net, "config", None) or {
            "name": "mlp",
            "shape": list(task.shape),
            "width": 128,
            "depth": 3,
            "num_classes": task.num_classes or 0,
        }
    with seeded_init(generator):
        net = FlowMapNet(base)
    if (
        init_from_teacher
        and teacher_net is not None
        and teacher.prediction == "velocity"
        and getattr(teacher_net, "config", None) == net.config["base"]
    ):
        net.init_from(teacher_net)
    return FlowMap(net, teacher.schedule)

r"""Bridge to Hugging Face diffusers (optional extra ``visgen[diffusers]``): a pretrained
network plus its scheduler's configuration become a :class:`~visgen.param.Denoiser`, so every
visgen sampler, grid and guidance wrapper drives a real pipeline's model.

What is read from the scheduler:

==================  ========================================================================
schedule            DDPM-family schedulers (β schedules ``linear``, ``scaled_linear``,
                    ``squaredcos_cap_v2``, trained β): :class:`~visgen.schedules.VPDiscrete`,
                    its step k at t = (k + 1)/T. Flow-matching schedulers (``FlowMatch*``,
                    ``use_flow_sigmas`` or ``prediction_type="flow_prediction"``):
                    :class:`~visgen.schedules.Linear`, σ = t.
prediction          ``epsilon`` → eps, ``v_prediction`` → v, ``sample`` → x0, flow → velocity
                    (diffusers' flow target ε − x0 is the course's velocity).
timesteps           :func:`timestep_of_t`, the one place continuous t becomes a diffusers
                    timestep.
==================  ========================================================================

Precision: the network may run in float16/bfloat16 while the solver state stays in the dtype
of ``x`` (keep it float32): low-precision solver arithmetic is what turns diffusers' samples
black or NaN (diffusers issues #1484, #9007), so :class:`DiffusersModel` casts at the call.
Zero-terminal-SNR schedules (``rescale_betas_zero_snr``) have λ = −∞ at the last step and
are refused.
"""

from __future__ import annotations

import torch

from visgen.param import Denoiser
from visgen.schedules import Linear, Schedule, VPDiscrete

__all__ = [
    "DiffusersModel",
    "from_diffusers",
    "grid_of",
    "prediction_of",
    "schedule_of",
    "timestep_of_t",
]

_PREDICTIONS = {
    "epsilon": "eps",
    "v_prediction": "v",
    "sample": "x0",
    "flow_prediction": "velocity",
}


def _is_flow(scheduler) -> bool:
    config = scheduler.config
    return (
        type(scheduler).__name__.startswith("FlowMatch")
        or bool(config.get("use_flow_sigmas", False))
        or config.get("prediction_type") == "flow_prediction"
    )


def _check_scheduler(scheduler) -> None:
    if not hasattr(scheduler, "config") or "num_train_timesteps" not in scheduler.config:
        raise TypeError(
            f"scheduler must be a diffusers scheduler instance, got {type(scheduler).__name__}"
        )


def schedule_of(scheduler) -> Schedule:
    """The visgen schedule of a diffusers scheduler (see the module table)."""
    _check_scheduler(scheduler)
    if _is_flow(scheduler):
        return Linear()
    config = scheduler.config
    if config.get("rescale_betas_zero_snr", False):
        raise ValueError(
            "zero-terminal-SNR schedules (rescale_betas_zero_snr=True) have α = 0 at the last "
            "step; visgen's VPDiscrete needs ᾱ > 0"
        )
    if config.get("beta_schedule") == "linear" and config.get("trained_betas") is None:
        return VPDiscrete(config["beta_start"], config["beta_end"], config["num_train_timesteps"])
    return VPDiscrete.from_betas(scheduler.betas)


def prediction_of(scheduler) -> str:
    """visgen's name for what the scheduler's network predicts."""
    _check_scheduler(scheduler)
    if _is_flow(scheduler):
        return "velocity"
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind not in _PREDICTIONS:
        raise ValueError(
            f"unsupported prediction_type {kind!r}; expected one of {list(_PREDICTIONS)}"
        )
    return _PREDICTIONS[kind]


def timestep_of_t(t: torch.Tensor, scheduler) -> torch.Tensor:
    r"""The diffusers timestep of continuous time t: THE map between the two clocks.

    * Discrete (DDPM-family) schedulers: k = t·T − 1, the inverse of
      :meth:`VPDiscrete.t_of_index <visgen.schedules.VPDiscrete.t_of_index>` (step k sits at
      t = (k + 1)/T), fractional between steps, as in DPM-Solver's discrete wrapper
      (Lu et al. 2022, App. D.2). Integer timesteps come back exactly.
    * Flow-matching schedulers: σ·T with σ = t (both write x_t = (1 − σ) x0 + σ ε).
    """
    T = scheduler.config["num_train_timesteps"]
    t = torch.as_tensor(t, dtype=torch.float64)
    return t * T if _is_flow(scheduler) else t * T - 1


def grid_of(scheduler) -> torch.Tensor:
    """The scheduler's time grid in visgen's t, after ``scheduler.set_timesteps(n)``.

    Flow schedulers: their σ's (ending at 0). Discrete ones: t_of_index of the (integer)
    timesteps, then the final point, t = 0 when the scheduler ends at clean data
    (``final_sigmas_type="zero"``, DDIM's ``set_alpha_to_one``, DDPM) or t = 1/T when it
    ends at the first step's noise level (``final_sigmas_type="sigma_min"``).
    """
    _check_scheduler(scheduler)
    if getattr(scheduler, "timesteps", None) is None or scheduler.num_inference_steps is None:
        raise ValueError("call scheduler.set_timesteps(n) before grid_of(scheduler)")
    if _is_flow(scheduler):
        return scheduler.sigmas.to(torch.float64).clone()
    steps = scheduler.timesteps.to(torch.float64)
    if not torch.equal(steps, steps.round()):
        raise ValueError(
            "grid_of needs integer timesteps (DDPM, DDIM, DPMSolver*, UniPC); this scheduler "
            "interpolates between steps"
        )
    schedule = schedule_of(scheduler)
    if hasattr(scheduler, "sigmas"):
        at_zero = float(scheduler.sigmas[-1]) == 0
    elif hasattr(scheduler, "final_alpha_cumprod"):
        at_zero = float(scheduler.final_alpha_cumprod) == 1
    else:
        at_zero = True
    final = torch.zeros(1, dtype=torch.float64) if at_zero else schedule.t_of_index([0])
    return torch.cat([schedule.t_of_index(steps.long()), final])


class DiffusersModel:
    """``model(x, t, cond)`` around a diffusers network, for :class:`~visgen.param.Denoiser`.

    ``cond`` is None, a dict of extra keyword arguments of the network (batched tensors, e.g.
    ``{"encoder_hidden_states": …, "pooled_projections": …}``), or a tensor passed as
    ``cond_key`` (e.g. ``"class_labels"``). The network runs in its own dtype; the output
    comes back in x's dtype.
    """

    def __init__(self, net: torch.nn.Module, scheduler, cond_key: str | None = None):
        if not callable(net):
            raise TypeError(f"net must be a callable diffusers model, got {type(net).__name__}")
        _check_scheduler(scheduler)
        self.net, self.scheduler, self.cond_key = net, scheduler, cond_key
        self.dtype = next(iter(net.parameters())).dtype if hasattr(net, "parameters") else None

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        if cond is None:
            kwargs = {}
        elif isinstance(cond, dict):
            kwargs = dict(cond)
        elif self.cond_key is None:
            raise ValueError("a tensor cond needs cond_key= (the network's argument name)")
        else:
            kwargs = {self.cond_key: cond}
        dtype = self.dtype or x.dtype
        timestep = timestep_of_t(t, self.scheduler).to(torch.float32)
        out = self.net(x.to(dtype), timestep=timestep, return_dict=False, **kwargs)[0]
        return out.to(x.dtype)


def from_diffusers(net: torch.nn.Module, scheduler, *, cond_key: str | None = None) -> Denoiser:
    """A Denoiser for a diffusers network and (an instance of) its scheduler.

    >>> den = from_diffusers(pipe.unet, pipe.scheduler, cond_key="encoder_hidden_states")
    >>> x = sample_dpmpp_2m(den, torch.randn(1, 4, 64, 64), grids.logsnr(20, den.schedule), cond)
    """
    return Denoiser(
        DiffusersModel(net, scheduler, cond_key), schedule_of(scheduler), prediction_of(scheduler)
    )

r"""Few-step causal video students distilled from a bidirectional teacher with a video-level
distribution-matching loss: CausVid and Self-Forcing.

Both start the causal student G from a causal flow-matching model (here the
diffusion-forcing model; CausVid initialises by ODE regression on teacher trajectories) and
minimise the reverse KL between the distribution of the student's *whole clips* and the
teacher's, at every noise level (DMD, arXiv 2311.18828, eq. 7, applied to videos):

.. math::
    ∇_θ \mathrm{KL} ∝ E_{t, ε}\Big[\frac{μ_\text{fake}(x_t, t) − μ_\text{real}(x_t, t)}
    {\operatorname{mean}|x − μ_\text{real}(x_t, t)|}\,\frac{∂x}{∂θ}\Big], \qquad
    x_t = (1 − t)\,x + t\,ε,

with μ_real the frozen **bidirectional** teacher (asymmetric distillation: the teacher sees
the whole clip, the student only the past) and μ_fake a bidirectional model initialised from
the teacher and trained online on the student's clips (``fake_updates`` flow-matching steps
per student step, DMD2's two time-scale rule; :func:`visgen.fewstep.distribution_matching_loss`
is the surrogate). They differ in where the student's clip x comes from:

* **CausVid** (Yin et al. 2025, arXiv 2412.07772, Alg. 1): data clips noised with one level
  per chunk drawn from the student's few-step grid, denoised in *one* block-causal pass. The
  context the student sees in training is noised ground truth; at inference it is its own
  clean output — the train–test gap.
* **Self-Forcing** (Huang et al. 2025, arXiv 2506.08009, Alg. 1): the student's own
  autoregressive rollout with the KV cache, chunk by chunk, exactly as at inference
  (:func:`rollout`): few-step stochastic denoising, then the clean t = 0 pass that writes the
  cache. **Gradient truncation**: every chunk stops at one exit step j (random per student
  step, the same for all chunks) whose x̂0 is its output; only that network evaluation keeps
  its graph — the earlier steps and the cache writes run without gradient, so no
  backpropagation goes through the cache.

CPU-sized simplifications: the student starts from the diffusion-forcing model instead of an
ODE-regression initialisation; the fake score is updated on the student step's own clip
(``fake_updates`` times with fresh t and ε) instead of on fresh rollouts; no classifier-free
guidance on the teacher.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from tqdm.auto import tqdm

from visgen._checks import check_choice, check_positive
from visgen.fewstep.dmd import distribution_matching_loss
from visgen.objectives import diffusion_loss
from visgen.sampling.grids import check_grid
from visgen.train.methods import METHODS
from visgen.train.trainer import TrainConfig, learning_rate, step_generator
from visgen.video.dit import VideoDiT
from visgen.video.sampling import check_rollout, chunk_denoiser, video_denoiser

__all__ = ["CausVid", "SelfForcing", "rollout"]

FEW_STEPS = (1.0, 0.75, 0.5, 0.25, 0.0)  # Self-Forcing's 4 levels (1000/750/500/250), unshifted


def rollout(
    model: VideoDiT,
    frames: int,
    ts,
    *,
    batch: int,
    cond=None,
    exit_step: int | None = None,
    context: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The student's own clip (B, frames, C, H, W), generated chunk by chunk with its KV cache.

    Each chunk is denoised by the stochastic multistep sampler over ``ts`` and committed by a
    clean t = 0 pass. With ``exit_step`` j (Self-Forcing's gradient truncation) every chunk
    stops after its (j + 1)-th evaluation and returns that x̂0 with its graph; all other
    evaluations and the cache writes run without gradient. ``exit_step=None`` runs every
    step without gradient (inference). ``context`` (B, C_f, …), whole chunks: clean first
    frames written to the cache by one t = 0 pass and returned unchanged, as in
    :func:`~visgen.video.sampling.generate`.
    """
    ts = check_grid(ts)
    times = ts.tolist()
    steps = len(times) - 1
    last = steps - 1 if exit_step is None else exit_step
    if not 0 <= last < steps:
        raise ValueError(f"exit_step must be in [0, {steps - 1}], got {exit_step!r}")
    begin, batch, shape = check_rollout(model, frames, batch, context, cond)
    text = model.encode_condition(cond, batch)
    cache = model.new_cache()
    chunks = []
    if context is not None:
        with torch.no_grad():
            model.forward_chunk(context, 0.0, cache, start_frame=0, text=text, commit=True)
        chunks.append(context)
    for s in range(begin, frames, model.cfg.chunk):
        den = chunk_denoiser(model, cache, s, text)
        x = torch.randn(shape, generator=generator)
        for j in range(last + 1):
            with torch.set_grad_enabled(exit_step is not None and j == last):
                x0 = den(x, times[j]).x0
            if j < last:
                x = (1 - times[j + 1]) * x0.detach() + times[j + 1] * torch.randn(
                    shape, generator=generator
                )
        with torch.no_grad():
            model.forward_chunk(x0.detach(), 0.0, cache, start_frame=s, text=text, commit=True)
        chunks.append(x0)
    return torch.cat(chunks, 1)


class _VideoDMD:
    """What CausVid and Self-Forcing share: the pinned assets, the fake score, the loop."""

    name = ""

    def __init__(
        self,
        teacher: str,
        *,
        ts=FEW_STEPS,
        fake_updates: int = 2,
        fake_lr: float = 1e-3,
        t_range=(0.02, 0.98),
        teacher_key: str | None = None,
    ):
        from visgen.train.assets import asset_key  # assets imports the method table

        self.teacher = teacher
        self.ts = [float(t) for t in check_grid(ts).tolist()]
        if self.ts[-1] != 0:
            raise ValueError(f"ts must end at 0, got {self.ts}")
        check_positive(fake_updates, "fake_updates", integer=True)
        check_positive(fake_lr, "fake_lr")
        lo, hi = (float(v) for v in t_range)
        if not 0 < lo < hi < 1:
            raise ValueError(f"t_range must satisfy 0 < lo < hi < 1, got {t_range!r}")
        self.fake_updates, self.fake_lr, self.t_range = fake_updates, fake_lr, (lo, hi)
        # pin the teacher's cache key (FAST and full differ), as REPA pins its encoder
        self.teacher_key = teacher_key or asset_key(teacher)
        self.spec = {
            "name": self.name,
            "teacher": teacher,
            "teacher_key": self.teacher_key,
            "ts": self.ts,
            "fake_updates": fake_updates,
            "fake_lr": fake_lr,
            "t_range": list(self.t_range),
        }

    def denoiser(self, model):
        """The student as a whole-clip Denoiser (x0 prediction, flow-matching schedule)."""
        return video_denoiser(model)

    def draw(self, batch, generator):
        raise TypeError(f"{self.name} trains with its own loop (fit), not with the Trainer")

    loss = draw

    def _teacher(self) -> nn.Module:
        from visgen.train.assets import asset, asset_key

        if asset_key(self.teacher) != self.teacher_key:
            raise ValueError(f"{self.name} was specified with {self.teacher} = {self.teacher_key}, "
                             f"but the asset is now {asset_key(self.teacher)} (FAST vs full, "
                             "or changed)")  # fmt: skip
        return asset(self.teacher, progress=False).model

    def student_clip(self, model, x0, cond, generator) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, model: nn.Module, data, config: TrainConfig, *, labels: bool,
            progress: bool = True, desc: str = "") -> tuple[nn.Module, list[float]]:  # fmt: skip
        """Distil into the causal ``model`` (initialised by the spec's ``init`` asset, e.g.
        the diffusion-forcing model); returns the EMA student and the loss of every step."""
        teacher = self._teacher()
        if not getattr(model, "cfg", None) or not model.cfg.chunk:
            raise ValueError("the student must be a frame-block-causal VideoDiT (chunk > 0)")
        model.requires_grad_(True).train()
        ema = copy.deepcopy(model).requires_grad_(False)
        fake = copy.deepcopy(teacher).requires_grad_(True).train()
        real_den, fake_den = video_denoiser(teacher), video_denoiser(fake)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        fake_opt = torch.optim.AdamW(fake.parameters(), lr=self.fake_lr)
        lo, hi = self.t_range
        history = []
        for step in tqdm(range(config.steps), desc=desc or self.name, disable=not progress,
                         leave=False):  # fmt: skip
            g = step_generator(config.seed, step)
            idx = torch.randint(0, len(data), (config.batch_size,), generator=g)
            x0 = data.x[idx]
            cond = data.labels[idx] if labels else None
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, config)
            clip = self.student_clip(model, x0, cond, g)
            detached = clip.detach()
            for _ in range(self.fake_updates):
                t = lo + (hi - lo) * torch.rand(len(idx), generator=g)
                noise = torch.randn(clip.shape, generator=g)
                # the teacher's own objective (x0-prediction, x0 loss) on the student's clips
                fake_loss = diffusion_loss(fake_den, detached, t=t, noise=noise, cond=cond)
                fake_opt.zero_grad(set_to_none=True)
                fake_loss.backward()
                fake_opt.step()
            t = lo + (hi - lo) * torch.rand(len(idx), generator=g)
            noise = torch.randn(clip.shape, generator=g)
            loss = distribution_matching_loss(clip, real_den, fake_den, t, noise, cond)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.lerp_(p, 1 - decay)
            history.append(float(loss.detach()))
        model.load_state_dict(ema.state_dict())
        return model.eval().requires_grad_(False), history


class SelfForcing(_VideoDMD):
    """Self-Forcing: DMD on the student's own KV-cached rollout (see the module docstring).

    ``truncation``: ``random`` (exit step uniform over the few steps, the paper's default) or
    ``last`` (always the final step). ``context`` C > 0: every training rollout continues the
    data clip's first C frames instead of starting from noise, so training sees the rollouts
    the drift protocol evaluates (real context, then the student's own frames); the DMD loss
    scores the whole clip, context included (the paper generates from scratch in training
    and at inference alike). Measured at the full budget its effect on the drift depends on
    the seed and never brings Self-Forcing near teacher forcing (BENCHMARKS.md, Lecture 9
    diagnostics), so it is off by default.
    """

    name = "self_forcing"

    def __init__(self, teacher: str, *, truncation: str = "random", context: int = 0,
                 **options):  # fmt: skip
        super().__init__(teacher, **options)
        self.truncation = check_choice(truncation, "truncation", ("random", "last"))
        self.spec["truncation"] = truncation
        if not isinstance(context, int) or context < 0:
            raise ValueError(f"context must be a non-negative int, got {context!r}")
        self.context = context
        if context:
            self.spec["context"] = context

    def student_clip(self, model, x0, cond, generator):
        steps = len(self.ts) - 1
        exit_step = steps - 1
        if self.truncation == "random":
            exit_step = int(torch.randint(steps, (1,), generator=generator))
        context = x0[:, : self.context] if self.context else None
        return rollout(model, x0.shape[1], self.ts, batch=x0.shape[0], cond=cond,
                       exit_step=exit_step, context=context, generator=generator)  # fmt: skip


class CausVid(_VideoDMD):
    """CausVid's asymmetric DMD on noised data clips (see the module docstring)."""

    name = "causvid"

    def student_clip(self, model, x0, cond, generator):
        b, f = x0.shape[:2]
        k = model.cfg.chunk
        levels = torch.tensor(self.ts[:-1], dtype=x0.dtype)
        pick = torch.randint(len(levels), (b, f // k), generator=generator)
        t = levels[pick].repeat_interleave(k, 1)
        tt = t[:, :, None, None, None]
        xt = (1 - tt) * x0 + tt * torch.randn(x0.shape, generator=generator)
        return model(xt, t, cond)  # the network predicts x0 (PREDICTION)


METHODS.update(self_forcing=SelfForcing, causvid=CausVid)

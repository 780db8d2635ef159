r"""Training a frame-block-causal video model by flow matching: teacher forcing and diffusion
forcing, as a method of :mod:`visgen.train.methods` (``{"name": "forcing", ...}``).

Both regress the velocity ε − x0 of x_t = (1 − t) x0 + t ε frame by frame, with a time
t_i ~ U[0, 1] drawn independently for every chunk i (one per frame for 1-frame chunks); they
differ in what the model sees of the past:

* **teacher forcing** (``kind="teacher"``): the clean ground-truth past. One pass over
  [x0; x_t] (:meth:`VideoDiT.forward` with ``clean=``): noisy chunk i attends to the clean
  chunks < i and to itself. At inference the past is the model's own output, which it never
  saw in training — exposure bias.
* **diffusion forcing** (``kind="diffusion"``, Chen et al. 2024, arXiv 2407.01392, §3):
  the past is noisy at its own level t_j; one block-causal pass over x_t. The model learns to
  denoise with a corrupted context, so a slightly wrong past is less foreign at inference.

    ℓ = (1/F) Σ_f ‖v_θ(x_t, t)_f − (ε_f − x0_f)‖²  (mean over pixels).
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice, check_positive
from visgen.nn.embeddings import drop_labels
from visgen.param import Denoiser
from visgen.train.methods import METHODS
from visgen.video.sampling import video_denoiser

__all__ = ["Forcing", "chunk_times"]


def chunk_times(batch: int, frames: int, chunk: int, generator=None) -> torch.Tensor:
    """Times (B, F): one t ~ U[0, 1] per chunk, repeated over its frames."""
    if frames % chunk:
        raise ValueError(f"frames={frames} must be divisible by chunk={chunk}")
    t = torch.rand(batch, frames // chunk, generator=generator)
    return t.repeat_interleave(chunk, 1)


class Forcing:
    """Teacher or diffusion forcing for a :class:`~visgen.video.VideoDiT` with ``chunk``.

    Args:
        kind: ``teacher`` or ``diffusion``.
        chunk: the model's chunk size (frames); one time per chunk.
        label_dropout: probability of the null caption (classifier-free guidance).
    """

    name = "forcing"

    def __init__(self, kind: str = "diffusion", chunk: int = 1, label_dropout: float = 0.0):
        self.kind = check_choice(kind, "kind", ("teacher", "diffusion"))
        self.chunk = check_positive(chunk, "chunk", integer=True)
        if not 0 <= label_dropout <= 1:
            raise ValueError(f"label_dropout must be in [0, 1], got {label_dropout}")
        self.label_dropout = label_dropout
        self.spec = {"name": "forcing", "kind": kind, "chunk": chunk,
                     "label_dropout": label_dropout}  # fmt: skip

    def denoiser(self, model) -> Denoiser:
        """The trained network as a whole-clip Denoiser (velocity, flow-matching schedule)."""
        return video_denoiser(model)

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        x0 = batch["x0"]
        if x0.dim() != 5:
            raise ValueError(f"forcing trains on videos (B, F, C, H, W), got {tuple(x0.shape)}")
        out = dict(batch)
        out["t"] = chunk_times(x0.shape[0], x0.shape[1], self.chunk, generator).to(x0.dtype)
        out["noise"] = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        if self.label_dropout > 0 and batch.get("cond") is not None:
            out["cond"] = drop_labels(batch["cond"], self.label_dropout, generator)
        return out

    def loss(self, model, batch: dict) -> torch.Tensor:
        if getattr(model, "cfg", None) is None or model.cfg.chunk != self.chunk:
            raise ValueError(f"the forcing method has chunk={self.chunk}; the model must match")
        x0, t, noise, cond = batch["x0"], batch["t"], batch["noise"], batch.get("cond")
        tt = t[:, :, None, None, None]
        xt = (1 - tt) * x0 + tt * noise
        clean = x0 if self.kind == "teacher" else None
        x0_hat = model(xt, t, cond, clean=clean)
        return (x0_hat - x0).pow(2).flatten(1).mean(1)


METHODS["forcing"] = Forcing

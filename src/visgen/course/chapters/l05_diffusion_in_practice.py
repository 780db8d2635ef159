"""Tour chapter L05: diffusion in practice — DiT, a latent space, x-prediction, REPA, guidance."""

from __future__ import annotations

import torch

from visgen import budget
from visgen.course import chapter
from visgen.course.helpers import digits_row, gaussians_floor_row, gaussians_row
from visgen.data import embedding_matrix, get_dataset
from visgen.metrics import data_floor, image_metrics, probe_accuracy
from visgen.nn import DiT, count_parameters
from visgen.oracles import eight_gaussians
from visgen.sampling import sample_euler
from visgen.sampling.guidance import autoguidance, classifier_free_guidance
from visgen.train import autoencoder
from visgen.viz import figure, scatter

# One transformer for pixels and latents: the same width, depth and token count (4 tokens),
# so a training step costs the same in both spaces (equal compute = equal steps).
SHAPES_DIT = {"dim": 64, "depth": 4, "heads": 4, "num_classes": 12}
JIT = {"prediction": "x0", "t_eps": 0.05, "t_sampler": "logit_normal"}
GRID = torch.linspace(0.999, 0.0, 21)  # 20 Euler steps from (almost) pure noise
TOY_DIM, TOY_WIDTH = 512, 64
REPA_LAYER = 2


def _shapes_dit(space: str, steps: int) -> dict:
    if space == "latent":
        model = {"name": "dit", "in_channels": 4, "size": 8, "patch_size": 4, **SHAPES_DIT}
        data = "latent:vae_shapes16"
    else:
        model = {"name": "dit", "in_channels": 3, "size": 16, "patch_size": 8, **SHAPES_DIT}
        data = "shapes16"
    return {
        "model": model,
        "method": {"name": "fm", **JIT, "label_dropout": 0.1},
        "data": data,
        "train": {"steps": steps, "batch_size": 64, "lr": 2e-3, "warmup": 50},
    }


def _toy_spec(prediction: str) -> dict:
    # in full mode the spec of tests/test_jit_toy.py: either run warms the other's cache
    return {
        "model": {"name": "mlp", "shape": [TOY_DIM], "width": TOY_WIDTH, "depth": 4},
        "method": {"name": "fm", "prediction": prediction, "t_eps": 0.05},
        "data": f"embedded:eight_gaussians:{TOY_DIM}",
        "train": {"steps": budget(full=1500, fast=200), "batch_size": 256, "lr": 4e-3},
    }


def _repa_spec(variant: str) -> dict:
    model = {"name": "dit", "in_channels": 1, "size": 8, "patch_size": 2, "dim": 64, "depth": 4}
    method = {"name": "fm", **JIT}
    if variant != "none":
        model.update(repa_dim=32, repa_projector="conv" if variant == "iREPA" else "mlp")
        method["repa"] = {
            "encoder": "repa_encoder_digits",
            "layer": REPA_LAYER,
            "normalize": variant == "iREPA",
        }
    train = {"steps": budget(full=300, fast=60), "batch_size": 64, "lr": 2e-3, "warmup": 50}
    return {"model": model, "method": method, "data": "digits", "train": train}


def _shapes_row(label: str, x, cond, **extra) -> dict:
    m = image_metrics(x, "shapes16", cond=cond)
    return {
        "samples": label,
        **extra,
        "FD (classifier)": m["fd"],
        "FD (PCA-16)": m["fd_pca16"],
        "right class": m.get("agreement", float("nan")),
        "confidence": m["confidence"],
    }


def _labels(n: int) -> torch.Tensor:
    return torch.arange(n) % 12


def _psnr(x, y) -> torch.Tensor:
    return 10 * torch.log10(4 / (x - y).pow(2).flatten(1).mean(1))


# --- sections -----------------------------------------------------------------------------


def _architecture(ctx, g) -> None:
    rows = []
    for label, model in (
        ("pixels 3×16×16, patch 8", DiT(3, 16, patch_size=8, **SHAPES_DIT)),
        ("latents 4×8×8, patch 4", DiT(4, 8, patch_size=4, **SHAPES_DIT)),
        ("digits 1×8×8, patch 2", DiT(1, 8, patch_size=2, dim=64, depth=4)),
        (
            "pixels + captions (MMDiT), patch 4",
            DiT(3, 16, patch_size=4, dim=64, depth=4, text_vocab=20, text_len=8),
        ),
    ):
        cfg = model.cfg
        x = torch.randn(8, cfg.in_channels, cfg.size, cfg.size, generator=g)
        cond = None if not cfg.num_classes else torch.arange(8) % cfg.num_classes
        with torch.no_grad():
            out = model(x, torch.rand(8, generator=g), cond)
        rows.append(
            {
                "DiT": label,
                "tokens": cfg.num_tokens,
                "values per token": cfg.patch_size**2 * cfg.in_channels,
                "parameters": count_parameters(model),
                "max |output| at init": float(out.abs().max()),
            }
        )
    ctx.table(
        rows,
        "Every DiT of this chapter. adaLN-Zero: the per-block shift/scale/gate regressor and "
        "the output layer start at zero, so a fresh DiT outputs exactly 0 and every block "
        "starts as the identity (tests/test_dit.py checks this bit for bit).",
    )


def _latent_space(ctx, g):
    vae = autoencoder("vae_shapes16")
    test = get_dataset("shapes16", "test")
    with torch.no_grad():
        z = vae.to_latent(test.x)
        rec = vae.from_latent(z).clamp(-1, 1)
    psnr = _psnr(rec, test.x)
    pair = torch.stack([test.x[:16], rec[:16]], 1).reshape(32, 3, 16, 16)
    ctx.images(
        pair,
        "Test shapes (odd columns) and their reconstructions dec(enc(x)) (even columns) by "
        f"`vae_shapes16`: 16×16×3 = 768 values → latents 4×8×8 = 256 values (f = 2). "
        f"PSNR {psnr.mean():.1f} dB on average, {psnr.min():.1f} dB at worst.",
        nrow=16,
    )
    ctx.metric("vae.psnr_mean", float(psnr.mean()))
    ctx.metric("vae.scale", float(vae.scale))
    ctx.text(
        f"The latent scaling factor s = 1/std(μ) = {float(vae.scale):.3f} is measured on the "
        f"training images (`Autoencoder.fit_scale`); the scaled test latents have std "
        f"{float(z.std()):.3f}, so the diffusion model sees unit-variance data as it would in "
        "pixel space."
    )
    return vae


def _pixel_vs_latent(ctx, g, vae, steps):
    n = budget(full=600, fast=120)
    y = _labels(n)
    rows, grids, dens = [], [], {}
    for space in ("pixel", "latent"):
        trained = ctx.train(_shapes_dit(space, steps))
        den = trained.denoiser()
        dens[space] = den
        shape = (4, 8, 8) if space == "latent" else (3, 16, 16)
        x = sample_euler(
            classifier_free_guidance(den, 3.0), torch.randn(n, *shape, generator=g), GRID, y
        )
        if space == "latent":
            x = vae.from_latent(x)
        x = x.clamp(-1, 1)
        grids.append(x[:48])
        rows.append(_shapes_row(f"{space} DiT, CFG w = 3", x, y, NFE=40))
    floor = data_floor("shapes16", n, repeats=3)
    train = get_dataset("shapes16")
    with torch.no_grad():
        rec_train = vae.from_latent(vae.to_latent(train.x[:n])).clamp(-1, 1)
    rows.append(
        {
            **_shapes_row("VAE reconstructions (latent ceiling)", rec_train, train.labels[:n]),
            "_floor": True,
        }
    )
    rows.append(
        {
            "samples": "real shapes (floor)",
            "FD (classifier)": floor["fd"],
            "FD (PCA-16)": floor["fd_pca16"],
            "right class": float("nan"),
            "confidence": floor["confidence"],
            "_floor": True,
        }
    )
    ctx.images(
        torch.cat(grids),
        f"Top four rows: pixel-space DiT; bottom four: latent DiT (decoded). Both: the same "
        f"transformer ({SHAPES_DIT['dim']} wide, {SHAPES_DIT['depth']} blocks, 4 tokens), "
        f"{steps} steps of batch 64, x-prediction with the v-loss; class = column mod 12. "
        "A pixel token must emit 192 values through a 64-wide transformer (block seams); a "
        "latent token 64 values that the decoder turns into smooth shapes.",
        nrow=12,
    )
    ctx.table(
        rows,
        f"N = {n} shapes per row, labels cycling through the 12 classes, against the test "
        "split. FD on the evaluation classifier's features and on 16 PCA coordinates; 'right "
        "class' = share classified as the requested class. Shaded rows: the latent model's "
        "ceiling (N reconstructed training shapes: what the decoder can produce) and N real "
        "training shapes (mean of 3 draws).",
    )
    for r in rows[:2]:
        key = r["samples"].split(" ")[0]
        ctx.metric(f"shapes.{key}.fd", r["FD (classifier)"])
        ctx.metric(f"shapes.{key}.right_class", r["right class"])
    return dens["latent"]


def _guidance(ctx, g, den, vae, steps_main):
    n = budget(full=480, fast=96)
    y = _labels(n)
    z = torch.randn(n, 4, 8, 8, generator=g)
    scales = budget(full=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0), fast=(1.0, 3.0))

    def row(label, guided, **extra):
        x = vae.from_latent(sample_euler(guided, z, GRID, y)).clamp(-1, 1)
        return _shapes_row(label, x, y, **extra), x

    rows, shown = [], []
    for w in scales:
        r, x = row(f"CFG w = {w:g}", classifier_free_guidance(den, w), w=w)
        rows.append(r)
        shown.append(x[:12])
    r, _ = row(
        "CFG w = 3 only for t ∈ [0.2, 0.8]",
        classifier_free_guidance(den, 3.0, interval=(0.2, 0.8)),
        w=3.0,
    )
    rows.append(r)
    weak_steps = max(steps_main // 5, 20)
    weak = ctx.train(_shapes_dit("latent", weak_steps)).denoiser()
    for w in budget(full=(1.5, 2.0), fast=(2.0,)):
        r, _ = row(
            f"AutoGuidance w = {w:g} (weak model: {weak_steps} steps)",
            autoguidance(den, weak, w),
            w=w,
        )
        rows.append(r)
    ctx.images(
        torch.cat(shown),
        "One row per CFG scale w (" + ", ".join(f"{w:g}" for w in scales) + "), same noise "
        "and labels: w = 1 is the conditional model, larger w pushes towards the class.",
        nrow=12,
    )
    ctx.table(
        rows,
        f"Guidance on the latent DiT (N = {n}, 20 Euler steps; a CFG step costs one forward "
        "pass on a batch of 2N). Guidance trades diversity (FD) for class agreement; the "
        "interval variant guides only the middle of the trajectory (Kynkäänniemi et al. "
        "2024); AutoGuidance (Karras et al. 2024) extrapolates away from a weaker model of "
        "the same family instead of from the unconditional one.",
    )
    ctx.metric("cfg.right_class", {str(r["w"]): r["right class"] for r in rows[: len(scales)]})


def _prediction_targets(ctx, g):
    p = embedding_matrix(TOY_DIM)
    test = get_dataset(f"embedded:eight_gaussians:{TOY_DIM}", "test").x[:2000]
    n = budget(full=2000, fast=500)
    ref = get_dataset("eight_gaussians", "test").x[:n]
    t = 0.5
    xt = (1 - t) * test + t * torch.randn(test.shape, generator=g)
    floor = float(eight_gaussians().posterior_variance(xt @ p, t, "linear").mean())
    bound = (TOY_DIM - 2 - TOY_WIDTH - 1) * (t / (1 - t)) ** 2
    z = 0.95 * torch.randn(n, TOY_DIM, generator=g)
    rows, clouds = [], {}
    for pred, label in (("x0", "x (JiT)"), ("velocity", "v (flow matching)"), ("eps", "ε (DDPM)")):
        den = ctx.train(_toy_spec(pred)).denoiser()
        with torch.no_grad():
            err = float((den.x0(xt, t) - test).pow(2).sum(1).mean())
        x = sample_euler(den, z, torch.linspace(0.95, 0.0, 41))
        u = clouds[label] = x @ p
        rows.append(
            {
                **gaussians_row(f"predicts {label}", u, ref),
                "x̂0 error at t = 0.5": err,
                "off-plane norm": float((x - u @ p.T).norm(dim=1).mean()),
            }
        )
        ctx.metric(f"toy.{pred}.x0_error", err)
        ctx.metric(f"toy.{pred}.energy_distance", rows[-1]["energy distance"])
    rows.append(
        {
            **gaussians_floor_row(ref, g),
            "x̂0 error at t = 0.5": floor,
            "off-plane norm": 0.0,
        }
    )
    rows[-1]["samples"] = "data vs data; exact posterior mean (floor)"
    fig, axes = figure(4, size=2.4)
    scatter(axes[0], ref, title="data (plane coordinates)")
    for ax, (label, u) in zip(axes[1:], clouds.items()):
        scatter(ax, u, title=f"predicts {label}")
    ctx.figure(
        fig,
        "Samples projected on the data plane (40 Euler steps from t = 0.95). All three MLPs "
        f"have the same size ({TOY_WIDTH} wide, 4 layers), loss (the v-loss) and training; "
        "only what the network outputs differs. ε-samples mostly fall outside the panel.",
    )
    ctx.table(
        rows,
        f"JiT's manifold argument on a toy: the eight Gaussians on a plane of R^{TOY_DIM} "
        f"(fixed orthonormal embedding), an MLP {TOY_WIDTH} wide. x-prediction only has to "
        "output points of the plane; ε- and v-prediction must output the 510 off-plane noise "
        f"directions, which a {TOY_WIDTH}-wide last layer cannot: at t = 0.5 an ε-network's "
        f"x̂0 error is at least (D − 2 − {TOY_WIDTH} − 1)·(t/(1 − t))² = {bound:.0f}. Energy "
        "distance and mode shares are measured on the plane; the off-plane norm is what is "
        "left in the other 510 directions. Shaded: two draws of the data, and the exact "
        "posterior mean's x̂0 error (the 2-D posterior variance).",
    )


def _repa(ctx, g):
    variants = {"none": "none", "mlp": "REPA (MLP)", "irepa": "iREPA"}
    trained = {v: ctx.train(_repa_spec(label)) for v, label in variants.items()}
    depth = trained["none"].model.cfg.depth
    blocks = range(1, depth + 1)
    probe = {v: probe_accuracy(t.model, "digits", blocks, 0.5) for v, t in trained.items()}
    fig, (ax,) = figure(1, size=3.2)
    for v, accs in probe.items():
        ax.plot(list(blocks), [accs[b] for b in blocks], marker="o", label=variants[v])
    ax.axvline(REPA_LAYER, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("block")
    ax.set_ylabel("linear-probe accuracy at t = 0.5")
    ax.set_xticks(list(blocks))
    ax.legend(fontsize=8)
    ctx.figure(
        fig,
        "Linear probe of the digit class from each block's mean-pooled tokens of a noisy "
        f"input (t = 0.5; chance 0.1). Alignment acts on block {REPA_LAYER} (dotted), to a "
        "frozen CNN's feature map.",
    )
    n = len(get_dataset("digits", "test"))
    rows, samples = [], []
    for v, t in trained.items():
        x = sample_euler(t.denoiser(), torch.randn(n, 1, 8, 8, generator=g), GRID).clamp(-1, 1)
        samples.append(x[:16])
        row = digits_row(variants[v], x)
        row.pop("right class")  # unconditional samples
        low_noise = probe_accuracy(t.model, "digits", REPA_LAYER, 0.25)[REPA_LAYER]
        row[f"probe block {REPA_LAYER}, t = 0.25"] = low_noise
        row[f"probe block {REPA_LAYER}, t = 0.5"] = probe[v][REPA_LAYER]
        rows.append(row)
        ctx.metric(f"repa.{v}.probe_t05", probe[v][REPA_LAYER])
    floor = data_floor("digits", n)
    rows.append(
        {
            "samples": "real digits (floor)",
            "FD (classifier)": floor["fd"],
            "FD (PCA-16)": floor["fd_pca16"],
            "confidence": floor["confidence"],
            "_floor": True,
        }
    )
    ctx.images(
        torch.cat(samples),
        "Unconditional digit samples, one row per model: " + ", ".join(variants.values()),
        nrow=16,
    )
    ctx.table(
        rows,
        f"Unconditional digit DiTs (16 tokens), {_repa_spec('none')['train']['steps']} "
        "steps each, with and without alignment (λ = 0.5). REPA: MLP projector; iREPA: 3×3 "
        f"convolution on the token grid + spatially normalised targets. N = {n} samples next "
        "to real held-out digits (shaded).",
    )


@chapter(
    "L05",
    "Diffusion in practice: DiT, latent space, x-prediction, REPA, guidance",
    lecture=5,
    summary="A DiT on pixels vs on VAE latents at equal compute; x- vs v- vs ε-prediction in "
    "high dimension; REPA's effect on the aligned layer; CFG, interval and AutoGuidance.",
    slides="lectures/05-diffusion-in-practice/slides.pdf",
    code=[
        "visgen.nn.dit.DiT",
        "visgen.nn.autoencoder.Autoencoder",
        "visgen.train.latent.latent_dataset",
        "visgen.objectives.flow_matching_loss",
        "visgen.objectives.repa.repa_loss",
        "visgen.objectives.repa.spatial_normalize",
        "visgen.sampling.guidance.autoguidance",
        "visgen.metrics.probe.probe_accuracy",
    ],
)
def run(ctx):
    g = ctx.generator()
    ctx.text(
        "Modern image generators are transformers (DiT: patchify, blocks conditioned by "
        "adaLN-Zero, unpatchify) trained in the latent space of an autoencoder, with the "
        "flow-matching loss, a logit-normal time distribution and classifier-free guidance. "
        "This chapter builds each piece at toy scale and measures what it buys.",
        "All DiTs here predict the clean sample x̂0 and are trained with the v-loss "
        "(JiT, Li & He 2025): v̂ = (x_t − x̂0)/max(t, 0.05) regressed onto ε − x0.",
    )
    _architecture(ctx, g)
    vae = _latent_space(ctx, g)
    steps = budget(full=1200, fast=100)
    latent = _pixel_vs_latent(ctx, g, vae, steps)
    _guidance(ctx, g, latent, vae, steps)
    _prediction_targets(ctx, g)
    _repa(ctx, g)

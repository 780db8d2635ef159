# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Seminar 5 — U-Net, DiT and MMDiT, block by block and measured
#
# Three denoisers of `visgen.nn` for the same 8×8 digits, each class-conditional:
#
# * **U-Net** (`UNet`, DDPM's form): convolutional residual blocks at two resolutions, skip
#   connections, one self-attention block in the middle; the time/class embedding is added
#   inside every residual block;
# * **DiT** (`DiT`, Peebles & Xie 2023): the image cut into patches = tokens, transformer
#   blocks conditioned by **adaLN-Zero** (shift, scale and gate from the time/class vector);
# * **MMDiT** (`DiT(text_vocab=…)`, SD3's joint blocks): text tokens get their own weights but
#   attend *jointly* with the image tokens. Here the "caption" is one word — the digit's name.
#
# We take each apart and check it against a formula: every block starts as the identity
# (zero-init), parameter counts and FLOPs equal closed forms, then we time them on this CPU and
# train all three with the same budget. The `assert`s make CI fail if the library drifts
# (`VISGEN_FAST=1`: smaller budgets). Code: `visgen.nn.unet`, `visgen.nn.dit`,
# `visgen.efficient.flops` (slides: `lectures/05-diffusion-in-practice/slides.pdf`; homework 3
# trains the pixel DiT).

# %%
import time

import matplotlib.pyplot as plt
import torch

import visgen
from visgen.config import budget
from visgen.course.helpers import digits_floor_row, digits_row
from visgen.data import Dataset, get_dataset
from visgen.efficient.flops import attention_flops, flop_table
from visgen.nn import DiT, UNet, count_parameters
from visgen.nn.attention import apply_rope, rope_2d
from visgen.nn.dit import patchify, unpatchify
from visgen.nn.unet import Attention, ResBlock
from visgen.sampling import sample_euler, uniform
from visgen.train import Diffusion, TrainConfig, Trainer

visgen.set_threads(1)
print("FAST budgets" if visgen.config.is_fast() else "full budgets")
torch.manual_seed(0)
D = 64  # transformer width
nets = {
    "U-Net": UNet(1, 8, channels=32, mults=(1, 2), num_classes=10),
    "DiT": DiT(1, 8, patch_size=2, dim=D, depth=4, heads=4, num_classes=10),
    "MMDiT": DiT(1, 8, patch_size=2, dim=D, depth=4, heads=4, text_vocab=10, text_len=1),
}
x, t = torch.randn(2, 1, 8, 8), torch.tensor([0.3, 0.8])
label = torch.tensor([3, 7])
conds = {"U-Net": label, "DiT": label, "MMDiT": label[:, None]}  # MMDiT: a one-word caption
for name, net in nets.items():
    print(f"{name:6s} {count_parameters(net):9,d} parameters")

# %% [markdown]
# ## 1. Every block starts as the identity
#
# A fresh network should predict exactly 0 and every residual block should pass its input
# through unchanged, so that training starts from a well-behaved deep network and each block
# learns a correction. The U-Net does it by zero-initialising the **last convolution** of each
# residual block and the output projection of attention; DiT by zero-initialising the adaLN
# map, so every **gate α** is 0 (adaLN-Zero), and the final linear layer.

# %%
for name, net in nets.items():
    out = net(x, t, conds[name])
    print(f"{name}: max |output of a fresh network| = {float(out.abs().max())}")
    assert torch.equal(out, torch.zeros_like(out))

unet = nets["U-Net"]
emb = unet.embed(t, label)
h = torch.randn(2, 32, 8, 8)
res = unet.down[0]  # a ResBlock: GN → SiLU → conv, + embedding, GN → SiLU → zero conv
assert isinstance(res, ResBlock) and torch.equal(res(h, emb), res.skip(h))
attn = unet.mid[1]  # single-head self-attention over the 4×4 positions, zero output projection
h4 = torch.randn(2, 64, 4, 4)
assert isinstance(attn, Attention) and torch.equal(attn(h4), h4)

dit = nets["DiT"]
c, _, _ = dit.condition(t, label)
tokens = dit.tokens(x)
for block in dit.blocks:
    out, _ = block(tokens, c, dit.rope)
    assert torch.equal(out, tokens)  # h + 0·Attn(...) + 0·MLP(...)

mm = nets["MMDiT"]
c, text, keep = mm.condition(t, label[:, None])
tokens = mm.tokens(x)
img_out, text_out = mm.blocks[0](tokens, c, mm.rope, text, keep)
assert torch.equal(img_out, tokens) and torch.equal(text_out, text)
print("every block of the three networks is the identity at initialisation")

# %% [markdown]
# ## 2. What the DiT's pieces do
#
# **Patchify.** An image (B, C, H, W) becomes N = (H/p)(W/p) tokens of p·p·C values; here
# p = 2 gives 16 tokens of 4 pixels. `unpatchify` is its exact inverse.

# %%
img = get_dataset("digits", "test").x[:2]
patches = patchify(img, 2)
print("image", tuple(img.shape), "→ tokens", tuple(patches.shape))
assert torch.equal(unpatchify(patches, 2, 1, 8), img)
fig, axes = plt.subplots(1, 17, figsize=(9, 0.9))
axes[0].imshow(img[0, 0], cmap="gray")
for ax, p in zip(axes[1:], patches[0]):
    ax.imshow(p.view(2, 2), cmap="gray", vmin=-1, vmax=1)
for ax in axes:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# **2D RoPE.** Positions enter attention only: queries and keys of the token at (row, col) are
# rotated by angles row·ω_i (half the channel pairs) and col·ω_i (the other half), so the score
# q·k depends only on the *offset* between the two tokens (DiT's original sin-cos table adds
# absolute positions instead; `pos="sincos"`).

# %%
cos, sin = rope_2d(4, D // 4)
q, k = torch.randn(D // 4), torch.randn(D // 4)


def score(i, j):
    return float((apply_rope(q, cos[i], sin[i]) * apply_rope(k, cos[j], sin[j])).sum())


# tokens (0,0)→(1,2) and (2,1)→(3,3) have the same offset (1, 2); (0,0)→(2,1) does not
print(f"{score(0, 6):+.5f} {score(9, 15):+.5f} {score(0, 9):+.5f}")
assert abs(score(0, 6) - score(9, 15)) < 1e-5 and abs(score(0, 6) - score(0, 9)) > 1e-3

# %% [markdown]
# **adaLN-Zero.** Per block, a linear map of SiLU(c) (c = time + class embedding) gives six
# vectors: shift β, scale γ and gate α for attention and for the MLP:
# h ← h + α₁ ⊙ Attn((1 + γ₁) ⊙ LN(h) + β₁), h ← h + α₂ ⊙ MLP((1 + γ₂) ⊙ LN(h) + β₂). The
# condition acts on every token through these 6·d numbers — no condition token is needed.
#
# **MMDiT.** The caption is encoded by a tiny transformer (`TextEncoder`: a start token + the
# words). In each joint block text and image tokens have *separate* weights (modulation, QKV,
# output projection, MLP) but one attention over the concatenated sequence [text; image], so
# the image reads the text and the text reads the image. The last block only needs the text's
# keys and values (nobody reads its text output).
#
# ## 3. Parameters: a formula for each block
#
# A DiT block of width d with MLP ratio 4 has QKV 3d² + 3d, the output projection d² + d, the
# MLP 8d² + 5d and the adaLN map 6d² + 6d: **18d² + 15d**. A joint block is two such streams; the
# last joint block's text stream is QKV + a 2d-wide adaLN map (shift and scale).

# %%
block = 18 * D**2 + 15 * D
for name in ("DiT", "MMDiT"):
    counts = [count_parameters(b) for b in nets[name].blocks]
    print(f"{name} blocks: {counts}")
assert all(count_parameters(b) == block for b in dit.blocks)
assert [count_parameters(b) for b in mm.blocks] == [2 * block] * 3 + [
    block + (3 * D**2 + 3 * D) + (2 * D**2 + 2 * D)
]
# the whole DiT: patch embedding, time+class embedding, blocks, final adaLN layer + linear
p2c = 2 * 2 * 1
whole = (
    (p2c * D + D) + count_parameters(dit.cond) + 4 * block + (2 * D**2 + 2 * D) + (D * p2c + p2c)
)
print(f"DiT: {count_parameters(dit):,d} counted, {whole:,d} by the formula")
assert count_parameters(dit) == whole

# %% [markdown]
# A U-Net residual block from c_in to c_out channels (embedding width e): two GroupNorms
# 2c_in + 2c_out, convolutions 9c_in c_out + c_out and 9c_out² + c_out, the embedding projection
# e c_out + c_out, and a 1×1 skip convolution c_in c_out + c_out when the widths differ.


# %%
def resblock_parameters(c_in, c_out, e):
    skip = c_in * c_out + c_out if c_in != c_out else 0
    return (
        2 * c_in
        + 2 * c_out
        + 9 * c_in * c_out
        + c_out
        + 9 * c_out**2
        + c_out
        + e * c_out
        + c_out
        + skip
    )


e = 4 * 32
for name, m in unet.named_modules():
    if isinstance(m, ResBlock):
        c_in, c_out = m.block1[2].in_channels, m.block1[2].out_channels
        assert count_parameters(m) == resblock_parameters(c_in, c_out, e), name
print("every U-Net residual block matches the formula")
shares = {
    "residual blocks": sum(count_parameters(m) for m in unet.modules() if isinstance(m, ResBlock)),
    "attention": count_parameters(attn),
    "embedding": count_parameters(unet.embed),
}
print({k: f"{v / count_parameters(unet):.0%}" for k, v in shares.items()})

# %% [markdown]
# ## 4. FLOPs: counted, and equal to the formula
#
# `flop_table` runs one forward pass under torch's FLOP counter (2 FLOPs per multiply–add of
# every matrix product, convolution and attention; element-wise work is not counted). For one
# image, a DiT block on N tokens costs 24Nd² in its linear layers (QKV 6Nd², projection 2Nd²,
# MLP 16Nd²), 12d² for adaLN (on the one vector c) and 4N²d for attention (QKᵀ and PV over N²
# pairs). Attention is quadratic in N, everything else linear: the DiT is cheap on 16 tokens
# and dominated by attention at high resolution. A joint block pays both streams and
# attention over N + L tokens (L = 2 here: start token + word).


# %%
def dit_block_flops(n, d, heads=4):
    return 24 * n * d**2 + 12 * d**2 + attention_flops(n * n * heads, d // heads)


one = {name: (torch.randn(1, 1, 8, 8), torch.tensor([0.5]), conds[name][:1]) for name in nets}
tables = {name: flop_table(net, *one[name]) for name, net in nets.items()}
assert tables["DiT"]["blocks.0"] == dit_block_flops(16, D)
L = 2
joint = (
    dit_block_flops(16, D)
    + 24 * L * D**2
    + 12 * D**2
    + attention_flops((16 + L) ** 2 * 4, D // 4)
    - attention_flops(16 * 16 * 4, D // 4)
)
assert tables["MMDiT"]["blocks.0"] == joint
print(f"DiT block: {tables['DiT']['blocks.0']:,d} FLOPs; MMDiT joint block: {joint:,d}")


# the U-Net: a 3×3 convolution on H×W costs 2·H·W·9·c_in·c_out
def resblock_flops(c_in, c_out, hw, e):
    skip = 2 * hw * c_in * c_out if c_in != c_out else 0
    return 2 * hw * 9 * (c_in * c_out + c_out**2) + 2 * e * c_out + skip


assert tables["U-Net"]["down.0"] == resblock_flops(32, 32, 64, e)
assert tables["U-Net"]["mid.0"] == resblock_flops(64, 64, 16, e)
print("counted FLOPs equal the formulas")

# %% [markdown]
# How the cost grows with the image: the same three configurations at 8, 16 and 32 pixels
# (patch 2: 16, 64 and 256 tokens).

# %%
sizes = [8, 16, 32]
growth = {}
for size in sizes:
    xs = torch.randn(1, 1, size, size)
    models = {
        "U-Net": (UNet(1, size, channels=32, mults=(1, 2), num_classes=10), label[:1]),
        "DiT": (DiT(1, size, patch_size=2, dim=D, depth=4, num_classes=10), label[:1]),
        "MMDiT": (DiT(1, size, patch_size=2, dim=D, depth=4, text_vocab=10, text_len=1),
                  label[:1, None]),
    }  # fmt: skip
    for name, (net, cond) in models.items():
        table = flop_table(net, xs, torch.tensor([0.5]), cond)
        growth.setdefault(name, []).append(table[""] / 1e6)
        if name == "DiT":
            n = (size // 2) ** 2
            assert table["blocks.0"] == dit_block_flops(n, D)
for name, mflops in growth.items():
    plt.loglog([s * s for s in sizes], mflops, marker="o", label=name)
    print(
        f"{name:6s} MFLOPs per image at 8 / 16 / 32 px: " + " / ".join(f"{m:.1f}" for m in mflops)
    )
plt.xlabel("pixels")
plt.ylabel("MFLOPs per image")
plt.legend()
plt.show()

# %% [markdown]
# ## 5. Latency on this CPU
#
# FLOPs are not time: small convolutions, attention kernels and Python overhead run at very
# different speeds. Median of 5 forward passes on a batch of 64 digits, one thread (the
# numbers depend on the machine and its load; no assert).

# %%
rows = []
with torch.no_grad():
    for name, net in nets.items():
        xb, tb = torch.randn(64, 1, 8, 8), torch.rand(64)
        cb = conds[name][:1].expand(64, *conds[name].shape[1:])
        net(xb, tb, cb)  # warm-up
        times = []
        for _ in range(5):
            start = time.perf_counter()
            net(xb, tb, cb)
            times.append(time.perf_counter() - start)
        ms = 1e3 * sorted(times)[2]
        gflops = 64 * tables[name][""] / 1e9
        rows.append((name, count_parameters(net), tables[name][""] / 1e6, ms, gflops / ms * 1e3))
print(f"{'':6s} {'params':>9s} {'MFLOPs/img':>10s} {'ms/batch':>9s} {'GFLOP/s':>8s}")
for name, params, mflops, ms, rate in rows:
    print(f"{name:6s} {params:9,d} {mflops:10.2f} {ms:9.1f} {rate:8.2f}")

# %% [markdown]
# ## 6. The same training budget for all three
#
# Flow matching with x_t = (1 − t)x0 + tε, the velocity target ε − x0, logit-normal t and
# 10 % of labels (captions) dropped for classifier-free guidance; the same steps, batch,
# learning rate and seed for each (`visgen.train.Trainer`, EMA weights). The MMDiT reads the
# label as a one-word caption. We sample with 20 Euler steps and measure the Fréchet distance
# (features of visgen's digit classifier) to the test digits, next to the floor of real
# training digits and to pure noise (what the untrained, zero-output network gives).

# %%
train = get_dataset("digits")
test = get_dataset("digits", "test")
steps = budget(full=1500, fast=150)
config = TrainConfig(steps=steps, batch_size=64, lr=2e-3, warmup=20, ema_decay=0.99)
method = Diffusion("fm", t_sampler="logit_normal", label_dropout=0.1)
data = {
    "U-Net": train,
    "DiT": train,
    "MMDiT": Dataset("digits as words", train.x, train.labels[:, None], 0),
}
noise = torch.randn(len(test), 1, 8, 8, generator=torch.Generator().manual_seed(1))
results, samples = {}, {}
for name, net in nets.items():
    start = time.process_time()
    trainer = Trainer(net, method, data[name], config, labels=True, progress=False).fit()
    cpu = time.process_time() - start
    cond = test.labels if name != "MMDiT" else test.labels[:, None]
    with torch.no_grad():
        samples[name] = sample_euler(method.denoiser(trainer.ema), noise, uniform(20), cond)
    results[name] = {**digits_row(name, samples[name], test.labels), "train CPU s": cpu,
                     "loss": sum(trainer.history[-20:]) / 20}  # fmt: skip
results["noise"] = digits_row("pure noise", noise, test.labels)
results["floor"] = digits_floor_row()
print(f"{steps} steps, batch 64")
for name, r in results.items():
    extra = f"  loss {r['loss']:.3f}  train {r['train CPU s']:.0f} CPU s" if "loss" in r else ""
    print(f"{name:6s} FD {r['FD (classifier)']:8.1f}  right class {r['right class']:.2f}{extra}")
fig, axes = plt.subplots(3, 10, figsize=(8, 2.6))
for row, name in zip(axes, nets):
    for ax, img in zip(row, samples[name][:10]):
        ax.imshow(img[0], cmap="gray", vmin=-1, vmax=1)
        ax.set_axis_off()
    row[0].set_title(name, fontsize=8, loc="left")
plt.show()
for name in nets:  # every network learned something: far from the untrained one
    assert results[name]["FD (classifier)"] < 0.8 * results["noise"]["FD (classifier)"], name
assert results["U-Net"]["FD (classifier)"] < 5 * results["floor"]["FD (classifier)"]

# %% [markdown]
# With a short budget the U-Net is far ahead: its convolutions share weights across positions
# and see their neighbours from the first step, while a transformer must learn locality from
# data (2D RoPE only tells it offsets). With more steps the transformers catch up — run the
# notebook without `VISGEN_FAST` (README: full-budget numbers) and compare. This is the
# small-data end of the trade-off; at scale the DiT's uniform, GPU-friendly blocks and its
# clean scaling with width and depth win (DiT §5).

# %% [markdown]
# ## Discussion
#
# * The U-Net spends most of its FLOPs at full resolution; the DiT spends the same on every
#   token. Which one would you rather scale to 256×256 latents, and which term of the FLOP
#   formula decides?
# * Zero-initialised gates make every block the identity. Why does the gradient still reach
#   the zero weights (and why would initialising *all* weights to zero fail)?
# * The MMDiT has ≈ 2× the DiT's parameters for the same image FLOPs + a little. Where would
#   the extra text stream pay off — and where does a single class token do just as well?
# * The FLOP ranking and the latency ranking differ. What would you measure before choosing an
#   architecture for a GPU?

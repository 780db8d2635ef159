r"""Image metrics: Fréchet distance on pluggable features, classifier confidence and class balance.

Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, arXiv
1706.08500, eq. 6 — FID with Inception-v3 features):

.. math:: FD = ‖μ_x − μ_y‖² + \operatorname{tr}\big(Σ_x + Σ_y − 2 (Σ_x^{1/2} Σ_y Σ_x^{1/2})^{1/2}\big).

CPU-scale simplification: the feature extractor is either a small CNN trained by visgen
(:class:`ClassifierFeatures`, the ``classifier_<data>`` asset; its penultimate layer plays
Inception's role) or a PCA of the training pixels (:class:`PCAFeatures`,
FD_pca16). FD is biased upwards at finite n, so a value is only meaningful next to the
**data-vs-data floor** at the same n (:func:`data_floor`): held-out test images vs as many
training images.

:func:`image_metrics` reports, for samples of ``digits`` or ``shapes16``/``shapes32``:
``fd`` (classifier features), ``fd_pca16``, ``confidence`` (mean max-probability of the
classifier), ``histogram`` (share of samples per predicted class) and, for
class-conditional samples, ``agreement`` (share classified as the requested class).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from visgen._checks import check_choice, check_positive, check_tensor

__all__ = [
    "IMAGE_DATASETS",
    "ClassifierFeatures",
    "PCAFeatures",
    "data_floor",
    "frechet_distance",
    "image_metrics",
    "psnr",
]

IMAGE_DATASETS = ("digits", "shapes16", "shapes32")


def _sqrtm_psd(c: torch.Tensor) -> torch.Tensor:
    w, q = torch.linalg.eigh(c)
    return (q * w.clamp_min(0).sqrt()) @ q.T


def frechet_distance(x, y) -> float:
    """FD between Gaussians fitted to features x (N, d) and y (M, d), in float64.

    tr((Σx^½ Σy Σx^½)^½) is computed from the eigenvalues of the symmetric PSD matrix
    Σx^½ Σy Σx^½, which equal those of Σx Σy.
    """
    x = check_tensor(x, "x", min_dim=2).flatten(1).double()
    y = check_tensor(y, "y", min_dim=2).flatten(1).double()
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same feature dimension, got {x.shape[1]} and {y.shape[1]}"
        )
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError("frechet_distance needs at least 2 samples in x and in y")
    mx, my = x.mean(0), y.mean(0)
    cx, cy = torch.cov(x.T).reshape(x.shape[1], -1), torch.cov(y.T).reshape(y.shape[1], -1)
    s = _sqrtm_psd(cx)
    cross = torch.linalg.eigvalsh(s @ cy @ s).clamp_min(0).sqrt().sum()
    return float((mx - my).pow(2).sum() + cx.trace() + cy.trace() - 2 * cross)


class PCAFeatures:
    """Projection of flattened images on the top ``k`` principal directions of ``train``."""

    def __init__(self, train: torch.Tensor, k: int = 16):
        check_positive(k, "k", integer=True)
        flat = check_tensor(train, "train", min_dim=2).flatten(1).double()
        self.mean = flat.mean(0)
        _, _, vh = torch.linalg.svd(flat - self.mean, full_matrices=False)
        self.components = vh[:k].T
        self.sample_shape = tuple(train.shape[1:])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"x must have shape (N, {self.sample_shape}), got {tuple(x.shape)}")
        return (x.flatten(1).double() - self.mean) @ self.components


class ClassifierFeatures:
    """Penultimate features and class probabilities of a trained classifier (eval mode)."""

    def __init__(self, classifier: torch.nn.Module, batch_size: int = 512):
        self.classifier, self.batch_size = classifier.eval(), batch_size

    @torch.no_grad()
    def _map(self, fn, x):
        return torch.cat(
            [fn(x[i : i + self.batch_size].float()) for i in range(0, len(x), self.batch_size)]
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(self.classifier.features, x)

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(lambda b: torch.softmax(self.classifier(b), 1), x)


@functools.lru_cache(maxsize=4)
def _extractors(data: str) -> tuple[ClassifierFeatures, PCAFeatures]:
    from visgen.data import get_dataset
    from visgen.train import asset

    classifier = asset(f"classifier_{data}", progress=False).model
    return ClassifierFeatures(classifier), PCAFeatures(get_dataset(data).x, 16)


@dataclass
class _Summary:
    fd: float
    fd_pca16: float
    confidence: float
    histogram: list[float]
    agreement: float | None
    n: int

    def as_dict(self) -> dict:
        out = {
            "fd": self.fd,
            "fd_pca16": self.fd_pca16,
            "confidence": self.confidence,
            "histogram": [round(h, 4) for h in self.histogram],
            "n": self.n,
        }
        if self.agreement is not None:
            out["agreement"] = self.agreement
        return out


def _summarise(x, data, reference, cond) -> _Summary:
    classifier, pca = _extractors(data)
    probs = classifier.probs(x)
    k = probs.shape[1]
    pred = probs.argmax(1)
    agreement = None
    if cond is not None:
        cond = torch.as_tensor(cond)
        if cond.shape != (x.shape[0],):
            raise ValueError(f"cond must have shape ({x.shape[0]},), got {tuple(cond.shape)}")
        agreement = float((pred == cond).double().mean())
    return _Summary(
        fd=frechet_distance(classifier(x), classifier(reference)),
        fd_pca16=frechet_distance(pca(x), pca(reference)),
        confidence=float(probs.max(1).values.mean()),
        histogram=(torch.bincount(pred, minlength=k).double() / len(pred)).tolist(),
        agreement=agreement,
        n=x.shape[0],
    )


def _reference(data: str, reference):
    from visgen.data import get_dataset

    if reference is not None:
        return check_tensor(reference, "reference", min_dim=4)
    return get_dataset(data, "test").x


def image_metrics(samples, data: str = "digits", *, reference=None, cond=None) -> dict:
    """Metrics of generated ``samples`` (N, C, H, W) in [−1, 1] against ``reference`` images
    (default: the test split of ``data``). ``cond``: requested class labels (N,), if any.

    Compare ``fd`` and ``fd_pca16`` with :func:`data_floor` at the same N.
    """
    check_choice(data, "data", IMAGE_DATASETS)
    x = check_tensor(samples, "samples", min_dim=4)
    ref = _reference(data, reference)
    if tuple(x.shape[1:]) != tuple(ref.shape[1:]):
        raise ValueError(
            f"samples must have shape (N, {tuple(ref.shape[1:])}), got {tuple(x.shape)}"
        )
    return _summarise(x, data, ref, cond).as_dict()


def psnr(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, 10 log10(range² / MSE) in dB, for images in
    [−1, 1] (range 2): how close x is to ``reference`` pixel by pixel (e.g. a cached or
    quantised sampler against the exact one from the same noise). Identical images give +inf."""
    check_tensor(x, "x", min_dim=2)
    if reference.shape != x.shape:
        raise ValueError(f"reference must have the shape of x {tuple(x.shape)}, got "
                         f"{tuple(reference.shape)}")  # fmt: skip
    mse = (x - reference).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4 / mse)


def data_floor(
    data: str = "digits",
    n: int | None = None,
    *,
    repeats: int = 5,
    seed: int = 0,
    match_labels: bool = False,
) -> dict:
    """The metrics of real held-out data: ``n`` random training images vs the test split.

    ``match_labels=True`` draws, for each test image, a random training image of the same
    class (``n`` is then the test size): the floor of class-conditional samples generated
    with the test labels, whose class histogram matches the test split exactly.

    Returns the mean of ``fd``, ``fd_pca16`` and ``confidence`` over ``repeats`` draws, their
    standard deviations (``*_std``), and the test split's own ``histogram``. ``n`` defaults to
    the size of the test split (397 for digits).
    """
    from visgen.data import get_dataset

    check_choice(data, "data", IMAGE_DATASETS)
    train, test = get_dataset(data), get_dataset(data, "test")
    n = len(test) if match_labels or n is None else n
    check_positive(n, "n", integer=True)
    g = torch.Generator().manual_seed(seed)

    def draw() -> torch.Tensor:
        if not match_labels:
            return torch.randperm(len(train), generator=g)[:n]
        idx = torch.empty(len(test), dtype=torch.long)
        for c in test.labels.unique():
            pool = (train.labels == c).nonzero().squeeze(1)
            where = (test.labels == c).nonzero().squeeze(1)
            idx[where] = pool[torch.randint(0, len(pool), (len(where),), generator=g)]
        return idx

    draws = [_summarise(train.x[draw()], data, test.x, None) for _ in range(repeats)]
    out = {"n": n, "repeats": repeats, "match_labels": match_labels}
    for key in ("fd", "fd_pca16", "confidence"):
        values = torch.tensor([getattr(d, key) for d in draws], dtype=torch.float64)
        out[key], out[f"{key}_std"] = (
            float(values.mean()),
            float(values.std()) if repeats > 1 else 0.0,
        )
    k = test.num_classes
    out["histogram"] = (torch.bincount(test.labels, minlength=k).double() / len(test)).tolist()
    return out

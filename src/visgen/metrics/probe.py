r"""Linear probing: how linearly decodable a label is from a representation.

A multinomial logistic regression (scikit-learn, L2-regularised, on standardised features) is
fitted on training features and its accuracy measured on held-out features — the protocol REPA
uses to read the semantic content of a diffusion transformer's hidden states (Yu et al. 2024,
arXiv 2410.06940, §2, Fig. 2), at CPU scale. :func:`probe_accuracy` applies it to the pooled
tokens of a DiT's blocks (:func:`visgen.train.hidden_features`).
"""

from __future__ import annotations

import numpy as np
import torch

from visgen._checks import check_tensor

__all__ = ["linear_probe", "probe_accuracy"]


def _as_numpy(x, name, dims):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != dims:
        raise ValueError(f"{name} must have {dims} dimension(s), got shape {x.shape}")
    return x


def linear_probe(train_x, train_y, test_x, test_y, *, c: float = 1.0) -> float:
    """Test accuracy of a logistic regression fitted on (train_x (N, d), train_y (N,))."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    if isinstance(train_x, torch.Tensor):
        check_tensor(train_x, "train_x", min_dim=2)
    xs = _as_numpy(train_x, "train_x", 2), _as_numpy(test_x, "test_x", 2)
    ys = _as_numpy(train_y, "train_y", 1), _as_numpy(test_y, "test_y", 1)
    if xs[0].shape[1] != xs[1].shape[1]:
        raise ValueError(
            f"train_x and test_x must have the same feature dimension, got {xs[0].shape[1]} "
            f"and {xs[1].shape[1]}"
        )
    for x, y, name in ((xs[0], ys[0], "train"), (xs[1], ys[1], "test")):
        if len(x) != len(y):
            raise ValueError(f"{name}_x has {len(x)} rows but {name}_y has {len(y)} labels")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    # one BLAS/OpenMP thread: these fits are small, and threads oversubscribe a busy machine
    # (measured 20x slower with 2 threads on a loaded 2-core CPU)
    with threadpool_limits(1):
        probe.fit(xs[0], ys[0])
        return float((probe.predict(xs[1]) == ys[1]).mean())


def probe_accuracy(model, data: str, layers, t: float = 0.25, *, seed: int = 0) -> dict:
    """Linear-probe test accuracy of the class from the pooled tokens of each block of
    ``layers`` at time t: {layer: accuracy}. The model sees no label (null condition)."""
    from visgen.data import get_dataset
    from visgen.train.repa import hidden_features

    train, test = get_dataset(data, "train"), get_dataset(data, "test")
    if train.labels is None or train.labels.dim() != 1:
        raise ValueError(f"data set {data!r} has no class labels to probe")
    g = torch.Generator().manual_seed(seed)
    f_train = hidden_features(model, train.x, layers, t, generator=g)
    f_test = hidden_features(model, test.x, layers, t, generator=g)
    return {
        layer: linear_probe(f_train[layer], train.labels, f_test[layer], test.labels)
        for layer in f_train
    }

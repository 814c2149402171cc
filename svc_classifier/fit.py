"""Fitting head weights on embeddings: sklearn logistic regression or a small
torch MLP, both seeded and deterministic on CPU.

Classes without a single training crop are dropped from the head (a head
cannot score a class it never saw); callers learn which from `dropped`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from svc_classifier.heads import l2_normalize

MLP_HIDDEN = 128
MLP_EPOCHS = 300


@dataclass
class Fitted:
    arrays: dict[str, np.ndarray]
    classes: list[str]
    dropped: list[str]


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0   # constant features pass through unscaled
    return mean, scale


def fit(x: np.ndarray, y: np.ndarray, classes: list[str], *, head_type: str = "logreg", normalize: bool = False,
        seed: int = 0, progress: Callable[[int, int], None] | None = None) -> Fitted:
    """x: (n, d) embeddings; y: (n,) indexes into classes."""
    present = sorted(set(int(v) for v in y))
    if len(present) < 2:
        raise ValueError(f"need crops of at least two classes, got {[classes[i] for i in present]}")
    kept = [classes[i] for i in present]
    remap = {old: new for new, old in enumerate(present)}
    y = np.array([remap[int(v)] for v in y], dtype=np.int64)
    x = np.asarray(x, dtype=np.float64)
    if normalize:
        x = l2_normalize(x)
    mean, scale = _standardise(x)
    z = (x - mean) / scale
    with threadpool_limits(1):  # small problems: BLAS thread pools only add contention
        layers = _fit_logreg(z, y, seed) if head_type == "logreg" else _fit_mlp(z, y, len(kept), seed, progress)
    arrays = {"input.mean": mean, "input.scale": scale}
    for k, (w, b) in enumerate(layers):
        arrays[f"layer{k}.weight"], arrays[f"layer{k}.bias"] = w, b
    return Fitted(arrays, kept, [c for i, c in enumerate(classes) if i not in remap])


def _fit_logreg(z: np.ndarray, y: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(z, y)
    w, b = clf.coef_.T.astype(np.float64), clf.intercept_.astype(np.float64)
    if w.shape[1] == 1:  # binary: sklearn keeps one logit z for class 1; softmax([0, z]) = sigmoid(z)
        w = np.concatenate([np.zeros_like(w), w], axis=1)
        b = np.array([0.0, float(b[0])])
    return [(w, b)]


def _fit_mlp(z: np.ndarray, y: np.ndarray, n_classes: int, seed: int,
             progress: Callable[[int, int], None] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Full-batch AdamW on CPU (training sets are a few thousand crops at most)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    d = z.shape[1]
    w0 = torch.nn.Linear(d, MLP_HIDDEN)
    w1 = torch.nn.Linear(MLP_HIDDEN, n_classes)
    for layer in (w0, w1):  # seeded init, independent of the global torch RNG
        bound = 1.0 / np.sqrt(layer.in_features)
        with torch.no_grad():
            layer.weight.copy_(torch.rand(layer.weight.shape, generator=gen) * 2 * bound - bound)
            layer.bias.zero_()
    net = torch.nn.Sequential(w0, torch.nn.ReLU(), w1)
    xs, ys = torch.tensor(z, dtype=torch.float32), torch.tensor(y)
    counts = torch.bincount(ys, minlength=n_classes).clamp(min=1).float()
    loss_fn = torch.nn.CrossEntropyLoss(weight=counts.sum() / counts / n_classes)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
    for epoch in range(MLP_EPOCHS):
        opt.zero_grad()
        loss_fn(net(xs), ys).backward()
        opt.step()
        if progress is not None and (epoch + 1) % 50 == 0:
            progress(epoch + 1, MLP_EPOCHS)
    return [(w0.weight.detach().double().numpy().T.copy(), w0.bias.detach().double().numpy().copy()),
            (w1.weight.detach().double().numpy().T.copy(), w1.bias.detach().double().numpy().copy())]

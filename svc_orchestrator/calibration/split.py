"""Image selection and the train / val / test split, both by image and seeded.

Three splits, not two: one split used for early stopping, threshold tuning and
the reported evaluation would report numbers the models were tuned on. Models fit on train
(early stopping on val), thresholds are tuned on val, and every reported
number comes from test, which nothing else has seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tator_core import errors

MIN_IMAGES = 3


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {"train": list(self.train), "val": list(self.val), "test": list(self.test)}

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def of(self, name: str) -> tuple[str, ...]:
        return getattr(self, name)


def select_images(names_by_split: Mapping[str, Sequence[str]], max_images: int, seed: int) -> list[str]:
    """A seeded sample of at most max_images (0 = all), sorted.

    Images outside the dataset's own "train" split come first: detectors are
    usually trained on that split, and their scores on their own training
    images are optimistic, so a calibration should see held-out images when it
    can. The sample is sorted so the order of work does not depend on the seed.
    """
    rng = np.random.default_rng(seed)
    held = sorted(n for split, names in names_by_split.items() if split != "train" for n in names)
    train = sorted(names_by_split.get("train", []))
    ordered = [held[i] for i in rng.permutation(len(held))] + [train[i] for i in rng.permutation(len(train))]
    chosen = ordered if max_images <= 0 else ordered[:max_images]
    return sorted(chosen)


def split_images(names: Sequence[str], *, val_fraction: float = 0.2, test_fraction: float = 0.2,
                 seed: int = 42) -> Split:
    """Seeded split by image; every split gets at least one image."""
    names = sorted(set(names))
    n = len(names)
    if n < MIN_IMAGES:
        raise errors.invalid_argument("config.max_images",
                                      f"calibration needs at least {MIN_IMAGES} images (train, val, test); got {n}")
    n_test = min(max(1, int(round(n * test_fraction))), n - 2)
    n_val = min(max(1, int(round(n * val_fraction))), n - 1 - n_test)
    perm = np.random.default_rng(seed).permutation(n)
    shuffled = [names[i] for i in perm]
    test = tuple(sorted(shuffled[:n_test]))
    val = tuple(sorted(shuffled[n_test:n_test + n_val]))
    train = tuple(sorted(shuffled[n_test + n_val:]))
    return Split(train, val, test)

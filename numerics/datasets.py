"""Small classification data sets that need no download, as float64 arrays with a fixed split.

- ``digits``: scikit-learn's ``load_digits`` (1,797 8 x 8 images of 10 digits, shipped inside
  scikit-learn), split 75/25 stratified (``random_state=0``) into 1,347 training and 450 test
  images, every pixel standardised by the training set's mean and standard deviation (a pixel
  that is constant on the training set is centred only).
- ``mixture``: a 10-class Gaussian mixture in ``R^32``: class means ``mu_c ~ N(0, s^2 I)`` with
  ``s = 0.5``, samples ``x = mu_y + N(0, I)``, 100 training and 50 test samples per class, all
  drawn from ``numpy.random.default_rng([seed, 7])`` (class means first, then training, then
  test samples, each class in turn).

The split and the data do not depend on a training seed: runs that differ only in their seed see
the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from numerics._validate import check_choice, check_int

__all__ = ["DATASETS", "Dataset", "load_dataset"]

DATASETS: tuple[str, ...] = ("digits", "mixture")
MIXTURE_DIM, MIXTURE_CLASSES, MIXTURE_SPREAD = 32, 10, 0.5
MIXTURE_TRAIN, MIXTURE_TEST = 100, 50


@dataclass(frozen=True, eq=False)
class Dataset:
    """Training and test features (``N x d``, float64) and integer labels ``0 .. classes - 1``."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def classes(self) -> int:
        return int(self.y_train.max()) + 1

    @property
    def dim(self) -> int:
        return self.X_train.shape[1]

    def __repr__(self) -> str:
        return (f"<Dataset {self.name}: {len(self.y_train)} train, {len(self.y_test)} test, "
                f"d={self.dim}, {self.classes} classes>")


def load_dataset(name: str, *, seed: int = 0) -> Dataset:
    """Return the data set ``name`` (``digits`` or ``mixture``; ``seed`` draws the mixture)."""
    check_choice(name, DATASETS, "dataset")
    seed = check_int(seed, "seed", min=0)
    return _digits() if name == "digits" else _mixture(seed)


@cache
def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X.astype(np.float64), y.astype(np.int64), test_size=0.25, stratify=y, random_state=0)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return Dataset("digits", (X_train - mean) / std, y_train, (X_test - mean) / std, y_test)


@cache
def _mixture(seed: int) -> Dataset:
    rng = np.random.default_rng([seed, 7])
    means = rng.standard_normal((MIXTURE_CLASSES, MIXTURE_DIM)) * MIXTURE_SPREAD
    parts = []
    for count in (MIXTURE_TRAIN, MIXTURE_TEST):
        y = np.repeat(np.arange(MIXTURE_CLASSES), count)
        parts.append((means[y] + rng.standard_normal((y.size, MIXTURE_DIM)), y))
    (X_train, y_train), (X_test, y_test) = parts
    return Dataset("mixture", X_train, y_train, X_test, y_test)

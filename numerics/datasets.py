"""Small data sets that need no download, as float64 arrays with a fixed split.

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

- ``compositional_sparse``: the sparse codes, dictionary and compositional ID/OOD split of the
  sae_amortisation reference experiments (Barin Pacela, Joshi et al. 2026), draw for draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from numerics._validate import check_choice, check_elements, check_int, check_real
from numerics.errors import InvalidArgument

__all__ = ["DATASETS", "CompositionalData", "Dataset", "compositional_sparse",
           "compressed_sensing_dim", "load_dataset"]

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


# --- compositional sparse codes (the sae_amortisation reference experiments) ----------------------

@dataclass(frozen=True, eq=False)
class CompositionalData:
    """Sparse codes ``Z`` (rows, ``k`` nonnegative entries each), activations ``Y = Z A^T`` and
    labels ``1[z_0 > 0.5]`` for the training, validation (ID) and OOD splits, and the unit-column
    dictionary ``A`` (``m x n``). Float64, as drawn."""

    A: np.ndarray
    Z_train: np.ndarray
    Y_train: np.ndarray
    Z_val: np.ndarray
    Y_val: np.ndarray
    Z_ood: np.ndarray
    Y_ood: np.ndarray
    k: int
    seed: int

    @property
    def labels(self) -> dict[str, np.ndarray]:
        """``1[z_0 > 0.5]`` per split (``train``, ``val``, ``ood``)."""
        return {name: getattr(self, f"Z_{name}")[:, 0] > 0.5 for name in ("train", "val", "ood")}

    def __repr__(self) -> str:
        m, n = self.A.shape
        return (f"<CompositionalData n={n} m={m} k={self.k} seed={self.seed}: "
                f"{len(self.Z_train)} train, {len(self.Z_val)} val, {len(self.Z_ood)} OOD>")


def compressed_sensing_dim(n_latents: int, k: int, c: float = 2.0) -> int:
    """The experiments' activation dimension ``m = max(k + 1, ceil(c k ln(n/k)))`` (``c = 2``);
    refused when it exceeds ``n``."""
    n_latents, k = check_int(n_latents, "n_latents", min=2), check_int(k, "k", min=1)
    c = check_real(c, "c", min=0.0, strict_min=True)
    if k >= n_latents:
        raise InvalidArgument(f"k={k} must be below n_latents={n_latents}")
    m = max(k + 1, math.ceil(c * k * math.log(n_latents / k)))
    if m > n_latents:
        raise InvalidArgument(f"m = ceil({c:g} k ln(n/k)) = {m} exceeds n_latents={n_latents}")
    return m


def compositional_sparse(n_latents: int, k: int, n_samples: int, *, m: int | None = None,
                         seed: int = 0, power: float = 1.0) -> CompositionalData:
    """The reference data process of Barin Pacela, Joshi et al. (2026), draw for draw.

    One legacy ``numpy.random.RandomState(seed)`` supplies, in order: ``A ~ N(0, 1)^{m x n}``
    with unit columns (a norm below 1e-8 left as is); then ``n_samples`` ID codes, each from
    ``b ~ Binomial(1, 1/2)``: ``b = 1`` takes latent 0 and ``k - 1`` distinct latents from
    ``{1, ..., n - n//2 - 1}``, ``b = 0`` takes ``k`` distinct latents from ``{1, ..., n - 1}``;
    then ``n_samples // 2`` OOD codes, latent 0 and ``k - 1`` distinct latents from
    ``{n - n//2, ..., n - 1}``. The active values are ``U(0, 1)^power``, the j-th draw going to
    the j-th index as drawn. The first ``n_samples // 2`` ID codes train, the rest validate.
    ``m`` defaults to :func:`compressed_sensing_dim`. The draws are sequential by nature (each
    choice's length depends on ``b``), so the codes are drawn one by one."""
    n = check_int(n_latents, "n_latents", min=2, max=10**6)
    k = check_int(k, "k", min=1, max=n - 1)
    n_samples = check_int(n_samples, "n_samples", min=2, max=10**6)
    m = compressed_sensing_dim(n, k) if m is None else check_int(m, "m", min=1, max=n)
    seed = check_int(seed, "seed", min=0, max=2**32 - 1)
    power = check_real(power, "power", min=0.0, strict_min=True)
    num_ood = n // 2
    if k - 1 > n - num_ood - 1 or k - 1 > num_ood:
        raise InvalidArgument(f"k={k} is too large for n_latents={n}: the ID and OOD pools hold "
                              f"{n - num_ood - 1} and {num_ood} latents")
    check_elements(int(n) * (n_samples + n_samples // 2) + m * n, f"codes of {n} latents")
    rng = np.random.RandomState(seed)
    A = rng.normal(0, 1, (m, n))
    norms = np.linalg.norm(A, axis=0)
    A = A / np.where(norms < 1e-8, 1.0, norms)
    id_pool, full_pool, ood_pool = np.arange(1, n - num_ood), np.arange(1, n), \
        np.arange(n - num_ood, n)

    def draw(count: int, ood: bool) -> np.ndarray:
        Z = np.zeros((count, n))
        for row in range(count):
            if ood:
                indices = np.concatenate([[0], rng.choice(ood_pool, k - 1, replace=False)])
            elif rng.binomial(1, 0.5) == 1:
                indices = np.concatenate([[0], rng.choice(id_pool, k - 1, replace=False)])
            else:
                indices = rng.choice(full_pool, k, replace=False)
            Z[row, indices.astype(np.int64)] = rng.uniform(0, 1, k) ** power
        return Z

    Z_id, Z_ood = draw(n_samples, False), draw(n_samples // 2, True)
    half = n_samples // 2
    return CompositionalData(A, Z_id[:half], Z_id[:half] @ A.T, Z_id[half:], Z_id[half:] @ A.T,
                             Z_ood, Z_ood @ A.T, k, seed)

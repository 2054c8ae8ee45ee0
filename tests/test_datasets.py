"""The compositional sparse-code data of the sae_amortisation reference experiments, against the
invariants the notes record from running the reference code (seed 0; the numbers are theirs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numerics.datasets import compositional_sparse, compressed_sensing_dim
from numerics.errors import InvalidArgument


def test_the_reference_invariants_at_n_100():
    d = compositional_sparse(100, 10, 5000, seed=0)
    assert d.A.shape == (47, 100) and d.Z_train.shape == (2500, 100)
    assert d.Y_train.shape == (2500, 47) and d.Z_ood.shape == (2500, 100)
    assert all(np.count_nonzero(z) == 10 for z in (*d.Z_train, *d.Z_val, *d.Z_ood))
    assert np.mean(d.Z_train[:, 0] > 0) == 0.5 and np.mean(d.Z_ood[:, 0] > 0) == 1.0
    assert d.labels["train"].mean() == 0.2504 and d.labels["ood"].mean() == 0.5028
    with_zero = np.flatnonzero((d.Z_train[d.Z_train[:, 0] > 0] > 0).any(axis=0))
    assert with_zero.tolist() == list(range(50))
    assert np.flatnonzero((d.Z_ood > 0).any(axis=0)).tolist() == [0, *range(50, 100)]
    assert np.allclose(d.Y_val, d.Z_val @ d.A.T) and np.allclose(np.linalg.norm(d.A, axis=0), 1)


@pytest.mark.parametrize("n,m,coherence,norm", [(50, 33, 0.515, 4.17), (100, 47, 0.511, 5.47),
                                                (1000, 93, 0.485, 17.76)])
def test_the_dictionary_is_the_references(n, m, coherence, norm):
    A = compositional_sparse(n, 10, 4, seed=0).A  # A is drawn first: the codes do not matter
    gram = np.abs(A.T @ A)
    np.fill_diagonal(gram, 0)
    assert A.shape == (m, n)
    assert round(float(gram.max()), 3) == coherence
    assert round(float(np.linalg.norm(A, 2) ** 2), 2) == norm
    welch = math.sqrt((n - m) / (m * (n - 1)))
    assert gram.max() >= welch  # the Welch bound


def test_the_experiments_dimensions():
    assert [compressed_sensing_dim(n, 10) for n in (50, 100, 500, 1000, 5000, 10000)] == \
        [33, 47, 79, 93, 125, 139]
    assert [compressed_sensing_dim(1000, k) for k in (2, 5, 10, 20, 50, 100)] == \
        [25, 53, 93, 157, 300, 461]


@pytest.mark.parametrize("call,match", [
    (lambda: compositional_sparse(10, 10, 100), "k=10"),
    (lambda: compressed_sensing_dim(12, 5, c=6.0), "exceeds n_latents"),
    (lambda: compositional_sparse(100, 10, 100, m=101), "m=101"),
    (lambda: compositional_sparse(100, 10, 10**7), "n_samples"),
])
def test_bad_input_is_one_line(call, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        call()
    assert "\n" not in str(info.value)

"""Dictionary learning by alternating FISTA and least squares (DL-FISTA).

For data ``X`` (``samples x m``) find a dictionary ``D`` (``m x n``, unit columns) and nonnegative
codes ``Z`` (``samples x n``) with ``X ~ Z D^T`` and ``Z`` sparse, by alternating, each round:

- codes: ``Z <- FISTA(X, D, lambda)`` for the nonnegative lasso, warm-started from the previous
  round's ``Z`` (zero in the first);
- dictionary: ``D <- X^T Z (Z^T Z + epsilon I)^{-1}`` with ``epsilon = 1e-6`` (the ridge solution
  of ``min_D ||X^T - D Z^T||_F^2 + epsilon ||D||_F^2``), then each column scaled to unit length;

and stopping once ``||D - D_old||_F / ||D_old||_F < tol`` after more than ``min_rounds`` rounds.
This is the DL-FISTA baseline of the compositional-sparse-ood reference (1,000 rounds of 100
FISTA iterations, lambda = 0.1, tol = 1e-5, more than 10 rounds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from numerics._repr import short_repr
from numerics._validate import as_real_array, check_elements, check_int, check_real
from numerics.backend import array_namespace
from numerics.errors import InvalidArgument, InvalidType
from numerics.formats import Format, get_format
from numerics.kernels import load_finite
from numerics.policies import Policy, get_policy
from numerics.solvers.fista import MAX_ITERATIONS, fista

__all__ = ["RIDGE", "LearnedDictionary", "dictionary_learning"]

#: ``epsilon`` of the dictionary update ``X^T Z (Z^T Z + epsilon I)^{-1}`` (the reference's).
RIDGE = 1e-6
#: A column shorter than this is left unscaled (an atom no code uses is zero after the update).
_SHORTEST = 1e-12


@dataclass(frozen=True, eq=False)
class LearnedDictionary:
    """The result of :func:`dictionary_learning`.

    ``D`` (``m x n``, float64, unit columns) is the dictionary after the last update; ``Z``
    (``samples x n``, the format's storage dtype) are the codes of the last round, which FISTA
    inferred with the dictionary *before* that update (as the reference's loop leaves them);
    ``Z_ood`` the codes of ``X_ood`` inferred the same way every round (warm-started from the
    previous round's, with the same dictionary as ``Z``), or ``None``; ``changes[r]`` is
    ``||D_r - D_{r-1}||_F / ||D_{r-1}||_F`` of round ``r + 1``; ``records`` holds ``record(D)``
    after every round when a ``record`` was given.
    """

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    D: object
    Z: object
    Z_ood: object
    rounds: int
    changes: tuple[float, ...]
    converged: bool
    records: tuple
    fmt: str
    policy: str


def dictionary_learning(X, n_atoms: int, *, lam: float = 0.1, rounds: int = 1000,
                        fista_iterations: int = 100, tol: float = 1e-5, min_rounds: int = 10,
                        seed: int = 0, init=None, fmt: Format | str = "fp32",
                        policy: Policy | str = "hw", X_ood=None,
                        record: Callable | None = None) -> LearnedDictionary:
    """Learn ``n_atoms`` unit atoms for the rows of ``X`` by DL-FISTA (the module docstring).

    ``D_0`` is ``init`` (``m x n_atoms``, its columns scaled to unit length), or columns drawn
    from ``N(0, I)`` by ``numpy.random.default_rng(seed)`` and scaled to unit length: the
    reference draws them with ``torch.manual_seed(seed)``, whose stream NumPy cannot reproduce,
    so the same seed gives a different (equally distributed) start. FISTA runs in ``fmt`` under
    ``policy``; the dictionary update is solved in float64 (``Z^T Z`` in a narrow format would
    drown ``epsilon``), and FISTA stores the new ``D`` in ``fmt`` when it loads it. The loop stops
    after round ``r`` (counted from 0) when the relative change is below ``tol`` and
    ``r > min_rounds``, as the reference's loop does, or after
    ``rounds`` rounds. ``record``, if given, is called as ``record(D)`` after every round.
    ``X_ood`` (rows of the same width), if given, has its codes inferred every round as the
    reference infers its OOD codes: FISTA with the round's dictionary, warm-started from the
    previous round's codes.
    """
    fmt, policy = get_format(fmt), get_policy(policy)
    n_atoms = check_int(n_atoms, "n_atoms", min=1)
    lam = check_real(lam, "lam", min=0.0)
    rounds = check_int(rounds, "rounds", min=1)
    fista_iterations = check_int(fista_iterations, "fista_iterations", min=1,
                                 max=MAX_ITERATIONS)
    tol = check_real(tol, "tol", min=0.0)
    min_rounds = check_int(min_rounds, "min_rounds", min=0)
    seed = check_int(seed, "seed", min=0)
    if record is not None and not callable(record):
        raise InvalidType(f"expected a callable but got record={record!r} "
                          f"(type={type(record).__name__}); pass a function of D, or None")
    xp = array_namespace(X) if init is None else array_namespace(X, init)
    X = as_real_array(X, "X")
    if X.ndim != 2:
        raise InvalidArgument(f"X has shape {tuple(X.shape)}; expected (samples, m)")
    load_finite(X, fmt, policy, "X")  # NaN, infinities and overflow are refused before any work
    m = X.shape[1]
    if X_ood is not None:
        X_ood = as_real_array(X_ood, "X_ood")
        if X_ood.ndim != 2 or X_ood.shape[1] != m:
            raise InvalidArgument(f"X_ood has shape {tuple(X_ood.shape)}; expected (samples, "
                                  f"{m}) like X")
        load_finite(X_ood, fmt, policy, "X_ood")
    check_elements(m * n_atoms + 2 * X.shape[0] * n_atoms + n_atoms * n_atoms,
                   f"a dictionary of {n_atoms} atoms for {X.shape[0]} samples")
    if init is None:
        D = xp.asarray(np.random.default_rng(seed).standard_normal((m, n_atoms)))
    else:
        D = xp.asarray(load_finite(xp.asarray(init), get_format("fp64"), policy, "init"),
                       dtype=np.float64)
        if tuple(D.shape) != (m, n_atoms):
            raise InvalidArgument(f"init has shape {tuple(D.shape)}; expected (m, n_atoms) = "
                                  f"{(m, n_atoms)}")
    D = _unit_columns(D, xp)
    x64 = xp.asarray(X, dtype=np.float64)
    Z, Z_ood, changes, records, converged = None, None, [], [], False
    for round_ in range(1, rounds + 1):
        Z = fista(X, D, lam, iterations=fista_iterations, nonneg=True, init=Z, fmt=fmt,
                  policy=policy, track=False).codes
        if X_ood is not None:
            Z_ood = fista(X_ood, D, lam, iterations=fista_iterations, nonneg=True, init=Z_ood,
                          fmt=fmt, policy=policy, track=False).codes
        z = xp.asarray(Z, dtype=np.float64)
        D_new = _unit_columns(_ridge_update(z, x64, xp), xp)
        change = float(xp.linalg.norm(D_new - D) / max(float(xp.linalg.norm(D)), 1e-8))
        D = D_new
        changes.append(change)
        if record is not None:
            records.append(record(D))
        if change < tol and round_ - 1 > min_rounds:  # the reference's 0-based round index
            converged = True
            break
    return LearnedDictionary(D, Z, Z_ood, round_, tuple(changes), converged, tuple(records),
                             fmt.name, policy.name)


def _ridge_update(z, x, xp):
    """``D = X^T Z (Z^T Z + eps I)^{-1}`` by a symmetric positive definite solve, not an
    inverse: ``(Z^T Z + eps I) D^T = Z^T X`` with ``n x n`` normal equations when there are
    fewer atoms than samples, and otherwise through the push-through identity
    ``(Z^T Z + eps I)^{-1} Z^T = Z^T (Z Z^T + eps I)^{-1}``, whose system is ``samples x
    samples`` (at 10000 atoms and 2500 samples, a tenth of the work)."""
    samples, atoms = z.shape
    if atoms <= samples:
        gram = z.T @ z + RIDGE * xp.eye(atoms, dtype=np.float64)
        return xp.linalg.solve(gram, z.T @ x).T
    gram = z @ z.T + RIDGE * xp.eye(samples, dtype=np.float64)
    return (z.T @ xp.linalg.solve(gram, x)).T


def _unit_columns(D, xp):
    norms = xp.linalg.norm(D, axis=0)
    return D / xp.where(norms > _SHORTEST, norms, 1.0)

"""Benchmark: batched FISTA for the lasso at the sae_amortisation reference size (n = 1000 latents,
m = 93, 2,500 samples, 100 iterations, lambda = 0.1, nonnegative codes, float32).

Cases, timed in alternation (A B C ... A B C ...):

- the Gram form as the reference writes it (``grad = Y G - X D``, an ``n x n`` product per
  iteration), in plain NumPy float32: the baseline, ratio 1;
- the factored form ``(Y D^T - X) D`` in plain NumPy float32;
- ``numerics.solvers.fista`` (fp32, hw; ``form="auto"`` takes the factored form here);
- scikit-learn's ``sparse_encode`` (coordinate descent, ``lasso_cd``, positive codes) run to the
  objective FISTA reaches, when scikit-learn is installed;
- the GEMM floor: the two products of an iteration, 100 times.

Prints each case's median, its ratio to the baseline, the floor's share of ours, and the mean
objective each reaches. Usage::

    python benchmarks/bench_fista.py [--rounds 5] [--latents 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from numerics.datasets import compositional_sparse
from numerics.solvers import fista, lasso_objective, lipschitz_constant

LAM, ITERATIONS = 0.1, 100


def plain(X, D, form: str):
    x, d = X.astype(np.float32), D.astype(np.float32)
    L = np.float32(lipschitz_constant(D))
    eta, tau = np.float32(1 / L), np.float32(LAM / L)
    gram, correlation = d.T @ d, x @ d

    def run():
        z = np.zeros((x.shape[0], d.shape[1]), np.float32)
        y, t = z, 1.0
        for _ in range(ITERATIONS):
            grad = y @ gram - correlation if form == "gram" else (y @ d.T - x) @ d
            z_next = np.maximum(y - eta * grad - tau, 0)
            t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
            y = z_next + np.float32((t - 1) / t_next) * (z_next - z)
            z, t = z_next, t_next
        return z

    return run


def floor(X, D):
    x, d = X.astype(np.float32), D.astype(np.float32)
    y = np.random.default_rng(0).random((x.shape[0], d.shape[1]), dtype=np.float32)

    def run():
        for _ in range(ITERATIONS):
            (y @ d.T - x) @ d

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latents", type=int, default=1000)
    args = parser.parse_args()
    data = compositional_sparse(args.latents, 10, 5000, seed=0)
    X, D = data.Y_val, data.A
    cases = {
        "Gram form, plain NumPy (baseline)": plain(X, D, "gram"),
        "factored form, plain NumPy": plain(X, D, "factored"),
        "theorems fista fp32 hw": lambda: fista(X, D, LAM, iterations=ITERATIONS, nonneg=True,
                                                fmt="fp32", track=False).codes,
        "GEMM floor (two products per iteration)": floor(X, D),
    }
    reached = float(np.mean(lasso_objective(X, D, cases["theorems fista fp32 hw"](), LAM,
                                            nonneg=True)))
    try:
        from sklearn.decomposition import sparse_encode

        def coordinate_descent():
            return sparse_encode(X, D.T, algorithm="lasso_cd", alpha=LAM / X.shape[1],
                                 positive=True, max_iter=1000)

        cases["scikit-learn sparse_encode (lasso_cd)"] = coordinate_descent
    except ImportError:
        print("scikit-learn is not installed: no coordinate-descent case")
    times = {name: [] for name in cases}
    results = {name: fn() for name, fn in cases.items()}  # warm up
    for _ in range(args.rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["Gram form, plain NumPy (baseline)"])
    print(f"FISTA, n = {args.latents}, m = {D.shape[0]}, {X.shape[0]} samples, {ITERATIONS} "
          f"iterations; median of {args.rounds} alternating rounds")
    for name, values in times.items():
        median = statistics.median(values)
        objective = ""
        if results[name] is not None and name != "GEMM floor (two products per iteration)":
            value = float(np.mean(lasso_objective(X, D, results[name], LAM, nonneg=True)))
            objective = f"   mean objective {value:.6f}"
        print(f"  {name:<42} {median:8.3f} s   x{base / median:5.2f} faster than the "
              f"baseline{objective}")
    ours = statistics.median(times["theorems fista fp32 hw"])
    products = statistics.median(times["GEMM floor (two products per iteration)"])
    print(f"  the two products alone are {products / ours:.0%} of ours; FISTA's mean objective "
          f"{reached:.6f} (scikit-learn's alpha is lambda / m: it minimises "
          f"||x - D z||^2 / (2 m) + alpha ||z||_1)")


if __name__ == "__main__":
    main()

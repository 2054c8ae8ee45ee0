"""Benchmark: batched FISTA for the lasso at the sae_amortisation reference size (n = 1000 latents,
m = 93, 2,500 samples, 100 iterations, lambda = 0.1, nonnegative codes, float32).

Cases, timed in alternation (A B C ... A B C ...), each after one untimed warm-up run:

- the Gram form as the reference writes it (``grad = Y G - X D``, an ``n x n`` product per
  iteration), in plain NumPy float32: the baseline, ratio 1;
- the factored form ``(Y D^T - X) D`` in plain NumPy float32;
- ``numerics.solvers.fista`` (fp32, hw; ``form="auto"`` takes the factored form here), without
  and with the objective tracked at every iterate;
- the GEMM floor: the two products of an iteration into preallocated outputs, 100 times, which
  no implementation of the factored form can beat;
- scikit-learn's ``sparse_encode`` (coordinate descent, ``lasso_cd``, positive codes) on the
  first ``--sklearn-samples`` rows, its time scaled to all rows (the samples are independent
  problems), when scikit-learn is installed;
- the factored form in PyTorch float32 on the CPU, when PyTorch is importable.

Prints each case's best and median time, the baseline's time over it (best over best, median
over median), the mean objective it reaches, ours over the floor, and scikit-learn's time over
ours at its objective. Usage::

    python benchmarks/bench_fista.py [--rounds 5] [--latents 1000] [--sklearn-samples 250]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

from numerics.datasets import compositional_sparse
from numerics.solvers import fista, lasso_objective, lipschitz_constant

LAM, ITERATIONS = 0.1, 100
BASELINE, OURS, TRACKED, FLOOR = ("Gram form, plain NumPy (baseline)", "theorems fista fp32 hw",
                                  "theorems fista fp32 hw, tracked",
                                  "GEMM floor (two products per iteration)")
SKLEARN, TORCH = "scikit-learn sparse_encode (lasso_cd)", "factored form, PyTorch CPU"


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
    residual, gradient = np.empty_like(x), np.empty_like(y)

    def run():
        for _ in range(ITERATIONS):
            np.matmul(y, d.T, out=residual)
            np.matmul(residual, d, out=gradient)

    return run


def coordinate_descent(X, D, samples: int):
    from sklearn.decomposition import sparse_encode

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: the objective is reported
            codes = sparse_encode(X[:samples], D.T, algorithm="lasso_cd",
                                  alpha=LAM / X.shape[1], positive=True, max_iter=1000)
        return codes

    return run


def pytorch(X, D):
    import torch

    x, d = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(D.astype(np.float32))
    L = lipschitz_constant(D)
    eta, tau = 1 / L, LAM / L

    def run():
        z = torch.zeros((x.shape[0], d.shape[1]))
        y, t = z, 1.0
        with torch.no_grad():
            for _ in range(ITERATIONS):
                z_next = torch.clamp(y - eta * ((y @ d.T - x) @ d) - tau, min=0)
                t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
                y = z_next + ((t - 1) / t_next) * (z_next - z)
                z, t = z_next, t_next
        return z.numpy()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latents", type=int, default=1000)
    parser.add_argument("--sklearn-samples", type=int, default=250)
    args = parser.parse_args()
    data = compositional_sparse(args.latents, 10, 5000, seed=0)
    X, D = data.Y_val, data.A
    cases = {
        BASELINE: plain(X, D, "gram"),
        "factored form, plain NumPy": plain(X, D, "factored"),
        OURS: lambda: fista(X, D, LAM, iterations=ITERATIONS, nonneg=True, fmt="fp32",
                            track=False).codes,
        TRACKED: lambda: fista(X, D, LAM, iterations=ITERATIONS, nonneg=True, fmt="fp32",
                               track=True).codes,
        FLOOR: floor(X, D),
    }
    scale = {name: 1.0 for name in cases}
    try:
        import sklearn  # noqa: F401
        samples = min(args.sklearn_samples, X.shape[0])
        cases[SKLEARN] = coordinate_descent(X, D, samples)
        scale[SKLEARN] = X.shape[0] / samples
    except ImportError:
        print("scikit-learn is not installed: no coordinate-descent case")
    try:
        import torch  # noqa: F401
        cases[TORCH], scale[TORCH] = pytorch(X, D), 1.0
    except ImportError:
        print("PyTorch is not importable: no PyTorch case")
    results = {name: fn() for name, fn in cases.items()}  # warm-up (numba compiles here)
    times = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * scale[name])
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"FISTA, n = {args.latents}, m = {D.shape[0]}, {X.shape[0]} samples, {ITERATIONS} "
          f"iterations, lambda = {LAM}, nonneg, float32; {args.rounds} alternating rounds")
    print(f"  {'case':<44} {'best':>8} {'median':>8}   {'baseline/case':>15}   mean objective")
    for name in cases:
        objective = ""
        if results[name] is not None:
            rows = results[name].shape[0]
            value = float(np.mean(lasso_objective(X[:rows], D, results[name], LAM,
                                                  nonneg=True)))
            objective = f"{value:.6f}" + (f" (first {rows} rows)" if rows < X.shape[0] else "")
        print(f"  {name:<44} {best[name]:7.3f}s {median[name]:7.3f}s   "
              f"x{best[BASELINE] / best[name]:5.2f} x{median[BASELINE] / median[name]:5.2f}   "
              f"{objective}")
    flops = 2 * 2 * X.shape[0] * D.shape[0] * D.shape[1] * ITERATIONS
    print(f"  float32 GEMM rate (floor case): {flops / best[FLOOR] / 1e9:.1f} GFLOP/s best")
    print(f"  ours / floor: {best[OURS] / best[FLOOR]:.2f} best, "
          f"{median[OURS] / median[FLOOR]:.2f} median; tracking the objective costs "
          f"x{best[TRACKED] / best[OURS]:.2f} (best)")
    if SKLEARN in cases:
        rows = results[SKLEARN].shape[0]
        ours_there = float(np.mean(lasso_objective(X[:rows], D, results[OURS][:rows], LAM,
                                                   nonneg=True)))
        theirs = float(np.mean(lasso_objective(X[:rows], D, results[SKLEARN], LAM,
                                               nonneg=True)))
        relation = "at least " if theirs > ours_there else ""
        print(f"  scikit-learn / ours: {relation}x{best[SKLEARN] / best[OURS]:.1f} (best), "
              f"time scaled from {rows} rows; on them its mean objective is {theirs:.6f}, "
              f"ours {ours_there:.6f} (alpha = lambda / m: scikit-learn minimises "
              f"||x - D z||^2 / (2 m) + alpha ||z||_1)")
        if theirs > ours_there:
            print("  scikit-learn stops above our objective, so reaching it would take longer: "
                  "the ratio is a lower bound")


if __name__ == "__main__":
    main()

"""Benchmark: one full-batch training step of the rank-deficit MLP (4 hidden layers of 128, ReLU,
cross-entropy at T = 1, Adam) on the 1,347 digits training images.

Cases, timed in alternation (A B C ... A B C ...) so that a busy machine slows all alike:

- plain float32 NumPy: the same step written directly (the baseline, ratio 1);
- theorems fp32 / hw and bf16 / hw: ``mlp_forward`` + ``mlp_backward`` + ``optimiser_step``;
- PyTorch CPU float32 (``nn.Linear`` layers, ``F.cross_entropy``, ``torch.optim.Adam``), when
  torch is installed;
- the GEMM floor: the step's matrix products (forward, and the two of each layer's backward) as
  float32 products of the same shapes, back to back: no step can be faster.

Prints each case's median, its ratio to the baseline, and the floor's share. Usage::

    python benchmarks/bench_rank_deficit.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# PyTorch's OpenMP threads otherwise spin for a while after each of its steps, and NumPy's BLAS
# threads, run next in the alternation, then crawl (a NumPy step read 270 ms instead of 8 ms)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from numerics.datasets import load_dataset
from numerics.models.mlp import mlp_forward, random_mlp
from numerics.train import Optimiser, init_state, mlp_backward, optimiser_step

SIZES = (64, 128, 128, 128, 128, 10)


def theorems_step(fmt: str):
    data = load_dataset("digits")
    state = {"model": random_mlp(SIZES, seed=0)}
    optimiser = Optimiser("adam", lr=1e-3)
    state["opt"] = init_state(optimiser, state["model"].params, fmt, "hw")

    def step():
        model = state["model"]
        forward = mlp_forward(model, data.X_train, fmt, "hw")
        grads = mlp_backward(model, forward, data.y_train, temperature=1.0)
        params, state["opt"] = optimiser_step(optimiser, state["opt"], grads)
        state["model"] = model.with_params(params)

    return step


def plain_step():
    data = load_dataset("digits")
    X = data.X_train.astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[data.y_train]
    model = random_mlp(SIZES, seed=0)
    params = [np.asarray(p, np.float32) for p in model.params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    count = [0]

    def step():
        ws, bs = params[0::2], params[1::2]
        hs, pre = [X], []
        for w, b in zip(ws[:-1], bs[:-1], strict=True):
            pre.append(hs[-1] @ w.T + b)
            hs.append(np.maximum(pre[-1], 0))
        z = hs[-1] @ ws[-1].T + bs[-1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        delta = (e / e.sum(axis=1, keepdims=True) - onehot) / X.shape[0]
        grads = []
        for i in range(len(ws) - 1, -1, -1):
            grads += [delta.sum(axis=0), delta.T @ hs[i]]
            if i:
                delta = (delta @ ws[i]) * (pre[i - 1] > 0)
        grads = grads[::-1]
        count[0] += 1
        t = count[0]
        for k, (p, g) in enumerate(zip(params, grads, strict=True)):
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            p -= (1e-3 / (1 - 0.9**t)) * m[k] / (np.sqrt(v[k]) / np.sqrt(1 - 0.999**t) + 1e-8)

    return step


def gemm_floor():
    rng = np.random.default_rng(0)
    n = load_dataset("digits").X_train.shape[0]
    shapes = []
    for d_in, d_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        shapes += [((n, d_in), (d_in, d_out)),  # forward
                   ((d_out, n), (n, d_in)),  # weight gradient
                   ((n, d_out), (d_out, d_in))]  # input gradient
    pairs = [(rng.standard_normal(a).astype(np.float32), rng.standard_normal(b).astype(np.float32))
             for a, b in shapes]

    def step():
        for a, b in pairs:
            a @ b

    return step


def torch_step():
    import torch
    import torch.nn.functional as F

    data = load_dataset("digits")
    X = torch.from_numpy(data.X_train.astype(np.float32))
    y = torch.from_numpy(data.y_train)
    layers = []
    for i, (d_in, d_out) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        layers.append(torch.nn.Linear(d_in, d_out))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        optimiser.zero_grad()
        F.cross_entropy(net(X), y).backward()
        optimiser.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    cases = {"plain float32 NumPy (baseline)": plain_step(),
             "theorems fp32 hw": theorems_step("fp32"),
             "theorems bf16 hw": theorems_step("bf16"),
             "GEMM floor (the step's products only)": gemm_floor()}
    try:
        import torch

        cases["PyTorch CPU float32"] = torch_step()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        print("torch is not installed: no PyTorch case")
    times = {name: [] for name in cases}
    for fn in cases.values():
        fn()  # warm up
    for _ in range(args.rounds):
        for name, fn in cases.items():  # A B C ... in every round
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["plain float32 NumPy (baseline)"])
    print(f"one training step, median of {args.rounds} alternating rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<40} {median * 1e3:8.2f} ms   x{median / base:5.2f} of the baseline")
    floor = statistics.median(times["GEMM floor (the step's products only)"])
    for name in ("theorems fp32 hw", "PyTorch CPU float32"):
        if name in times:
            print(f"  {name}: the products alone are {floor / statistics.median(times[name]):.0%}"
                  f" of its step")
    if "PyTorch CPU float32" in times:
        ratio = statistics.median(times["theorems fp32 hw"]) / statistics.median(
            times["PyTorch CPU float32"])
        print(f"  theorems fp32 hw / PyTorch CPU float32: {ratio:.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: the hw-policy bf16 softmax against a plain float32 softmax on the same data.

Prints median times over repeats, the ratios measured in the same run, and peak memory
(tracemalloc on NumPy; the CuPy memory pool on a GPU). Compares with PyTorch's bf16 softmax when
torch is installed. Usage::

    python benchmarks/bench_softmax.py [--log2n 24] [--repeats 5] [--backend numpy|cupy]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import ml_dtypes
import numpy as np

from numerics import get_backend, softmax


def plain_softmax(x, xp):
    e = xp.exp(x - x.max())
    return e / e.sum()


def measure(fn, repeats, xp):
    synchronize = (lambda: xp.cuda.Stream.null.synchronize()) if xp is not np else (lambda: None)
    fn()  # warm up (kernel compilation, page faults)
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    if xp is np:
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        pool = xp.get_default_memory_pool()
        pool.free_all_blocks()
        before = pool.used_bytes()
        fn()
        synchronize()
        peak = pool.total_bytes() - before
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="numpy")
    args = parser.parse_args()
    xp = get_backend(args.backend)
    n = 2**args.log2n
    host = np.random.default_rng(0).uniform(-4, 4, n).astype(np.float32)
    data_bf16 = host.astype(ml_dtypes.bfloat16)
    data_f32 = data_bf16.astype(np.float32)  # the same values, held in float32
    x_f32 = xp.asarray(data_f32)
    x_bf16 = xp.asarray(data_bf16) if xp is np else xp.asarray(data_f32)

    cases = {
        "float32 plain softmax (baseline)": lambda: plain_softmax(x_f32, xp),
        "bf16 hw": lambda: softmax(x_bf16, "bf16", "hw"),
        "bf16 strict": lambda: softmax(x_bf16, "bf16", "strict"),
        "fp32 hw": lambda: softmax(x_f32, "fp32", "hw"),
    }
    try:
        import torch

        device = "cuda" if xp is not np else "cpu"
        t_bf16 = torch.from_numpy(data_f32).to(device).to(torch.bfloat16)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def torch_softmax():
            torch.softmax(t_bf16, dim=0)
            sync()

        cases[f"torch {device} bf16 softmax"] = torch_softmax
    except ImportError:
        print("torch not installed: no peer comparison")

    print(f"n = 2^{args.log2n} = {n}, backend = {args.backend}, repeats = {args.repeats}")
    results = {name: measure(fn, args.repeats, xp) for name, fn in cases.items()}
    base_time = results["float32 plain softmax (baseline)"][0]
    print(f"{'case':<34} {'median s':>10} {'vs baseline':>12} {'peak MiB':>10}")
    for name, (seconds, peak) in results.items():
        # torch allocates outside the Python allocator, so tracemalloc cannot see its memory
        shown = "untraced" if name.startswith("torch") and xp is np else f"{peak / 2**20:.1f}"
        print(f"{name:<34} {seconds:>10.4f} {seconds / base_time:>11.2f}x {shown:>10}")
    torch_name = next((name for name in results if name.startswith("torch")), None)
    if torch_name:
        ratio = results["bf16 hw"][0] / results[torch_name][0]
        print(f"bf16 hw / {torch_name}: {ratio:.2f}x")


if __name__ == "__main__":
    main()

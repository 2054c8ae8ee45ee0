"""Benchmark: every length ``n = 1..N`` of the collapse experiment, by the key/value cache
(:func:`numerics.representational_collapse.branches.branch_forward`, one pass,
``O(L N^2 d)``) against per-length recomputation (two forward passes per length,
``O(L N^3 d)``), measured in the same run.

Also checks that both give the same states (bit for bit under ``strict``; to a rounding under
``hw``, whose float32 matrix products may sum in another order). Usage::

    python benchmarks/bench_representational_collapse.py [--n 2048] [--d 64] [--layers 1]
        [--format fp32] [--policy hw] [--backend numpy|cupy]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from numerics import get_backend, get_format, to_numpy
from numerics.models.transformer import forward
from numerics.representational_collapse import TOKEN, collapse_model, family_prefix
from numerics.representational_collapse.branches import branch_forward


def timed(fn, xp):
    synchronize = (lambda: xp.cuda.Stream.null.synchronize()) if xp is not np else (lambda: None)
    start = time.perf_counter()
    result = fn()
    synchronize()
    return time.perf_counter() - start, result


def per_length(model, prefix, fmt, policy, xp):
    size = prefix.shape[0] + 1
    token = xp.asarray([TOKEN], dtype=prefix.dtype)
    short, long = [], []
    for n in range(1, size + 1):
        tokens = xp.concatenate([prefix[: n - 1], token])
        short.append(forward(model, tokens, fmt, policy).states[-1])
        long.append(forward(model, xp.concatenate([tokens, token]), fmt, policy).states[-1])
    return xp.stack(short), xp.stack(long)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--format", default="fp32")
    parser.add_argument("--policy", default="hw")
    parser.add_argument("--backend", default="numpy")
    args = parser.parse_args()
    xp = get_backend(args.backend)
    fmt = get_format(args.format)
    model = collapse_model(d=args.d, layers=args.layers, pe="nope", seed=0)
    prefix = xp.asarray(family_prefix("sampled", args.n))
    branch_forward(model, prefix[:63], TOKEN, fmt=fmt, policy=args.policy)  # warm up

    cached_time, cached = timed(
        lambda: branch_forward(model, prefix, TOKEN, fmt=fmt, policy=args.policy), xp)
    naive_time, (short, long) = timed(lambda: per_length(model, prefix, fmt, args.policy, xp), xp)

    pairs = ((cached.short, short), (cached.long, long))
    worst = max(float(np.max(np.abs(to_numpy(a).astype(np.float64)
                                    - to_numpy(b).astype(np.float64)))) for a, b in pairs)
    print(f"N = {args.n}, d = {args.d}, layers = {args.layers}, {fmt.name}/{args.policy}, "
          f"backend = {args.backend}")
    print(f"{'key/value cache, all lengths':<36} {cached_time:>10.3f} s")
    print(f"{'per-length recomputation':<36} {naive_time:>10.3f} s")
    print(f"ratio (recomputation / cache): {naive_time / cached_time:.1f}x")
    print(f"largest difference between the two: {worst:.3g}")


if __name__ == "__main__":
    main()

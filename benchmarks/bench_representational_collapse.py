"""Benchmark: every length ``n = 1..N`` of the collapse experiment in one pass of the key/value
cache (:func:`numerics.representational_collapse.branches.branch_forward`, ``O(L N^2 d)``):
the format under ``strict`` against ``hw``, with fp32 under ``hw`` as the baseline.

Cases are timed in alternation (A B C ... A B C ...) after one untimed warm-up run each, so that a
busy machine slows all of them alike; prints each case's best and median time, its ratio to the
baseline (best over best, and the median of the per-round ratios), and ``strict`` over ``hw``.
With ``--recompute`` it also times, once, per-length recomputation (two forward passes per
length, ``O(L N^3 d)``) under ``--policy`` and checks that both give the same states (bit for bit
under ``strict``; to a rounding under ``hw``, whose float32 matrix products may sum in another
order). Usage::

    python benchmarks/bench_representational_collapse.py [--n 1024] [--d 64] [--layers 1]
        [--format bf16] [--rounds 3] [--recompute] [--policy hw] [--backend numpy|cupy]
"""

from __future__ import annotations

import argparse
import statistics
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


def alternate(cases: dict, rounds: int, xp) -> dict:
    """Times per case, one per round, the cases run in turn within each round."""
    for fn in cases.values():  # warm up: compilation, page faults
        timed(fn, xp)
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            times[name].append(timed(fn, xp)[0])
    return times


def paired(values, base) -> float:
    """The median over rounds of ``values / base`` measured in the same round."""
    return statistics.median(v / b for v, b in zip(values, base, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--format", default="bf16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recompute", action="store_true")
    parser.add_argument("--policy", default="hw")
    parser.add_argument("--backend", default="numpy")
    args = parser.parse_args()
    xp = get_backend(args.backend)
    fmt = get_format(args.format)
    model = collapse_model(d=args.d, layers=args.layers, pe="nope", seed=0)
    prefix = xp.asarray(family_prefix("sampled", args.n))
    baseline = "fp32 hw"
    cases = {baseline: lambda: branch_forward(model, prefix, TOKEN, fmt="fp32", policy="hw")}
    for policy in ("hw", "strict"):
        cases[f"{fmt.name} {policy}"] = (lambda p: lambda: branch_forward(
            model, prefix, TOKEN, fmt=fmt, policy=p))(policy)
    times = alternate(cases, args.rounds, xp)
    print(f"N = {args.n}, d = {args.d}, layers = {args.layers}, backend = {args.backend}; "
          f"key/value cache, all lengths; {args.rounds} alternating rounds")
    print(f"  {'case':<20} {'best s':>9} {'median s':>9} {'best/best':>10} {'median ratio':>13}")
    base = times[baseline]
    for name, values in times.items():
        print(f"  {name:<20} {min(values):9.3f} {statistics.median(values):9.3f} "
              f"{min(values) / min(base):9.2f}x {paired(values, base):12.2f}x")
    hw, strict = times[f"{fmt.name} hw"], times[f"{fmt.name} strict"]
    print(f"  {fmt.name} strict / hw: {min(strict) / min(hw):.2f}x best, "
          f"{paired(strict, hw):.2f}x median")
    if not args.recompute:
        return
    cached_time, cached = timed(
        lambda: branch_forward(model, prefix, TOKEN, fmt=fmt, policy=args.policy), xp)
    naive_time, (short, long) = timed(lambda: per_length(model, prefix, fmt, args.policy, xp), xp)
    pairs = ((cached.short, short), (cached.long, long))
    worst = max(float(np.max(np.abs(to_numpy(a).astype(np.float64)
                                    - to_numpy(b).astype(np.float64)))) for a, b in pairs)
    print(f"{fmt.name}/{args.policy}, timed once each:")
    print(f"  {'key/value cache, all lengths':<36} {cached_time:>10.3f} s")
    print(f"  {'per-length recomputation':<36} {naive_time:>10.3f} s")
    print(f"  ratio (recomputation / cache): {naive_time / cached_time:.1f}x")
    print(f"  largest difference between the two: {worst:.3g}")


if __name__ == "__main__":
    main()

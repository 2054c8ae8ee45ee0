"""Benchmark: the softmax kernel in every format, ``hw`` and ``strict``, against a plain float32
NumPy softmax on the same data, on one vector of n = 2^24 logits and on a 4096 x 4096 batch
(rows of 4096).

Cases are timed in alternation (A B C ... A B C ...) after one untimed warm-up run each, so that a
busy machine slows all of them alike. Each case's input is the data stored in its format (the
plain softmax reads the same values in float32). Prints each case's best and median time and its
ratio to the baseline two ways: best over best, and the median of the per-round ratios; and
``strict`` over ``hw`` per format. Compares with PyTorch's and JAX's bf16 softmax when they are
installed (in a side environment: neither is a dependency), and times two limits on the same
input: the memory floor (one float32 copy, reading and writing every element once) and one float32
``exp`` pass, the transcendental every softmax must evaluate per element. With ``--memory`` it
measures peak memory in one more run (tracemalloc on NumPy; the CuPy pool on a GPU). Usage::

    python benchmarks/bench_softmax.py [--log2n 24] [--rounds 3] [--shapes vector,batch]
        [--formats fp16,bf16] [--policies hw,strict] [--backend numpy|cupy] [--memory]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from numerics import FORMAT_NAMES, POLICY_NAMES, get_backend, get_format, softmax

BASELINE = "float32 plain NumPy softmax"
#: The limits: every softmax reads its input and writes its output once, and evaluates one exp
#: per element.
LIMIT_COPY, LIMIT_EXP = "limit: float32 copy (memory)", "limit: float32 exp pass"


def plain_softmax(x, xp):
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def synchronizer(xp):
    return (lambda: xp.cuda.Stream.null.synchronize()) if xp is not np else (lambda: None)


def peak_memory(fn, xp) -> int:
    if xp is np:
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak
    pool = xp.get_default_memory_pool()
    pool.free_all_blocks()
    before = pool.used_bytes()
    fn()
    synchronizer(xp)()
    return pool.total_bytes() - before


def cases_for(shape, formats, policies, xp) -> dict:
    host = np.random.default_rng(0).uniform(-4, 4, shape).astype(np.float32)
    device_host = xp.asarray(host)
    buffer = xp.empty_like(device_host)
    cases = {BASELINE: (lambda x: lambda: plain_softmax(x, xp))(device_host),
             LIMIT_COPY: lambda: xp.copyto(buffer, device_host),
             LIMIT_EXP: lambda: xp.exp(device_host, out=buffer)}
    for name in formats:
        fmt = get_format(name)
        stored = fmt.store(xp.asarray(host))
        for policy in policies:
            cases[f"{name} {policy}"] = (
                lambda x, f, p: lambda: softmax(x, f, p, axis=-1))(stored, name, policy)
    try:
        import torch

        device = "cuda" if xp is not np else "cpu"
        t_bf16 = torch.from_numpy(host).to(device).to(torch.bfloat16)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def torch_softmax():
            torch.softmax(t_bf16, dim=-1)
            sync()

        cases[f"torch {device} bf16 softmax"] = torch_softmax
    except ImportError:
        pass
    if xp is np:
        try:
            import jax
            import jax.numpy as jnp

            j_bf16 = jnp.asarray(host, dtype=jnp.bfloat16)
            jitted = jax.jit(lambda v: jax.nn.softmax(v, axis=-1))
            cases["jax cpu bf16 softmax"] = lambda: jitted(j_bf16).block_until_ready()
        except ImportError:
            pass
    return cases


def alternate(cases: dict, rounds: int, xp) -> dict:
    """Times per case, one per round, the cases run in turn within each round."""
    synchronize = synchronizer(xp)
    for fn in cases.values():  # warm up: compilation, page faults
        fn()
    synchronize()
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def report(label: str, times: dict, peaks: dict | None) -> None:
    base = times[BASELINE]
    print(label)
    print(f"  {'case':<30} {'best s':>9} {'median s':>9} {'best/best':>10} {'median ratio':>13}"
          + (f" {'peak MiB':>9}" if peaks else ""))
    for name, values in times.items():
        ratio = statistics.median(t / b for t, b in zip(values, base, strict=True))
        line = (f"  {name:<30} {min(values):9.4f} {statistics.median(values):9.4f} "
                f"{min(values) / min(base):9.2f}x {ratio:12.2f}x")
        if peaks:
            # torch allocates outside the Python allocator, so tracemalloc cannot see its memory
            shown = "untraced" if name.startswith(("torch", "jax")) \
                else f"{peaks[name] / 2**20:.1f}"
            line += f" {shown:>9}"
        print(line)
    for name in times:
        fmt, _, policy = name.partition(" ")
        if policy == "strict" and f"{fmt} hw" in times:
            hw = times[f"{fmt} hw"]
            ratio = statistics.median(t / h for t, h in zip(times[name], hw, strict=True))
            print(f"  {fmt} strict / hw: {min(times[name]) / min(hw):.2f}x best, "
                  f"{ratio:.2f}x median")
    peers = [name for name in times if name.startswith(("torch", "jax"))]
    for peer in (peers if "bf16 hw" in times else []):
        ratio = statistics.median(t / b for t, b in zip(times["bf16 hw"], times[peer],
                                                        strict=True))
        print(f"  bf16 hw / {peer}: {min(times['bf16 hw']) / min(times[peer]):.2f}x "
              f"best, {ratio:.2f}x median")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default="vector,batch")
    parser.add_argument("--formats", default=",".join(FORMAT_NAMES))
    parser.add_argument("--policies", default=",".join(POLICY_NAMES))
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    xp = get_backend(args.backend)
    n = 2**args.log2n
    side = 2 ** (args.log2n // 2)
    shapes = {"vector": ((n,), f"one vector, n = 2^{args.log2n}"),
              "batch": ((side, n // side), f"a {side} x {n // side} batch, softmax over rows")}
    formats, policies = args.formats.split(","), args.policies.split(",")
    print(f"backend = {args.backend}, {args.rounds} alternating rounds")
    for key in args.shapes.split(","):
        shape, label = shapes[key]
        cases = cases_for(shape, formats, policies, xp)
        times = alternate(cases, args.rounds, xp)
        peaks = {name: peak_memory(fn, xp) for name, fn in cases.items()} if args.memory else None
        report(label, times, peaks)


if __name__ == "__main__":
    main()

"""A fuzz campaign over the public functions: every call either returns finite numbers that agree
with an independent reference (mpmath at 60 digits, exact rationals, NumPy's own polynomial
evaluation) within the tolerance stated here, or raises :class:`InvalidArgument` with a one-line
message naming an argument. Nothing else: no NaN, no silent infinity, no other exception.

The default profile runs a few dozen inputs per function; ``THEOREMS_FUZZ=long`` (or
``--hypothesis-profile=long``) runs 700 per function, over 10,000 in all, and prints the count per
function at the end of the session.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp
from _reference import DTYPES, exact_round
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import theorems.iso_perplexity as iso
import theorems.representational_collapse as rc
import theorems.softmax_dispersion as sd
from numerics import (
    FORMAT_NAMES,
    entropy,
    get_format,
    get_policy,
    logsumexp,
    round_to,
    softmax,
    softmax_entropy,
)
from numerics.errors import InvalidArgument
from proofs.softmax_dispersion import PAPER as SD_PAPER
from proofs.softmax_dispersion import POLY_NAMES

#: Calls made per function in this session (printed by the conftest at the end of a long run).
CALLS: Counter = Counter()
U = 2.0**-53


def fuzz(share: int = 1):
    """The profile's number of inputs (``share``: a slow function gets that fraction of it)."""
    return settings(deadline=None, max_examples=max(5, settings().max_examples // share),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


FUZZ = fuzz()

# --- strategies ----------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
special = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324,
                           1.7976931348623157e308])
wrong_type = st.one_of(st.booleans(), st.complex_numbers(allow_nan=False, allow_infinity=False),
                       st.text(max_size=4), st.none(), st.just(sp.Symbol("x")),
                       st.just([1.0, [2.0]]), st.just(mpmath.mpc(1, 1)))


def scalars(low: float, high: float, *, integer: bool = False):
    """Numbers of every kind around ``[low, high]``: in range mostly, and out of it, special,
    or of the wrong type now and then."""
    inside = (st.integers(int(max(low, -2**62)), int(min(high, 2**62))) if integer
              else st.floats(low, high, allow_nan=False, allow_infinity=False))
    kinds = st.one_of(inside, inside.map(np.float64), inside.map(lambda v: mpmath.mpf(v)),
                      inside.map(lambda v: sp.Rational(Fraction(v))))
    return st.one_of(kinds, kinds, kinds, finite, special, wrong_type,
                     st.integers(-2**70, 2**70))


def arrays(max_side: int = 12):
    """Arrays of every dtype, shape (empty included), special value and memory layout, and
    array-like things that are not arrays of reals."""
    shapes = hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=max_side)
    floats = hnp.arrays(st.sampled_from([np.float64, np.float32, np.float16]), shapes,
                        elements=st.one_of(st.floats(-80, 80, width=16),
                                           st.sampled_from([math.nan, math.inf, -math.inf])))
    others = hnp.arrays(st.sampled_from([np.int64, np.int8, np.bool_, np.complex128]), shapes)
    base = st.one_of(floats, floats, others)
    layouts = st.one_of(base, base.map(np.asfortranarray),
                        base.filter(lambda a: a.ndim == 1).map(lambda a: a[::-1]),
                        base.filter(lambda a: a.ndim == 1).map(lambda a: a.tolist()))
    reals = hnp.arrays(np.float64, st.integers(1, max_side), elements=st.floats(-60, 60))
    return st.one_of(reals, reals, layouts, st.just([[1.0, 2.0], [3.0]]), st.just(["1", "2"]),
                     st.just("1.0"), st.just([]), st.just([mpmath.mpf(1), 2.0]))


# --- the outcome rule ---------------------------------------------------------------------------

def outcome(name: str, call, names: tuple[str, ...]):
    """Run ``call``; return its result, or ``None`` if it raised :class:`InvalidArgument` with a
    one-line message naming one of ``names``. Any other exception fails the test."""
    CALLS[name] += 1
    try:
        with np.errstate(invalid="raise"):  # a NaN made inside is a bug too
            return call()
    except InvalidArgument as exc:
        message = str(exc)
        assert "\n" not in message and message, message
        assert any(n in message for n in names), f"{message!r} names none of {names}"
        return None


def assert_finite(value) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    assert np.all(np.isfinite(array)), f"non-finite result {value!r}"
    return array


def to_mp(x) -> mpmath.mpf:
    """A real scalar of any accepted kind, exactly (a SymPy Float to its 60 digits), as mpmath."""
    if isinstance(x, sp.Rational):
        return mpmath.mpf(int(x.p)) / int(x.q)
    if isinstance(x, sp.Basic):
        return mpmath.mpf(str(sp.N(x, 60)))
    return mpmath.mpf(x)


def close(value, exact, rel: float, absolute: float = 0.0) -> bool:
    return abs(mpmath.mpf(float(value)) - exact) <= rel * abs(exact) + absolute


# --- numerics: kernels and rounding -------------------------------------------------------------

def _softmax_reference(x: np.ndarray) -> list:
    with mpmath.workdps(60):
        values = [mpmath.mpf(float(v)) for v in x]
        top = max(values)
        terms = [mpmath.exp(v - top) for v in values]
        total = mpmath.fsum(terms)
        return [t / total for t in terms]


@FUZZ
@given(logits=arrays(), policy=st.sampled_from(["hw", "strict"]),
       temperature=st.one_of(st.just(1.0), scalars(0.25, 4.0)))
def test_softmax(logits, policy, temperature):
    result = outcome("softmax", lambda: softmax(logits, "fp64", policy,
                                                temperature=temperature),
                     ("logits", "temperature", "mask"))
    if result is None:
        return
    x = np.atleast_1d(np.asarray(logits, dtype=np.float64)) / float(temperature)
    got = assert_finite(result).reshape(x.shape)
    for row, got_row in zip(x.reshape(-1, x.shape[-1]), got.reshape(-1, x.shape[-1]),
                            strict=True):
        # each exponential's argument carries a relative rounding (|z| u), the sum n u, the
        # division and the output a few u
        spread = float(row.max() - row.min())
        rel = (spread + row.size + 8) * 2 * U
        for value, exact in zip(got_row, _softmax_reference(row), strict=True):
            assert close(value, exact, rel, 1e-300), (value, exact)


@FUZZ
@given(logits=arrays(), policy=st.sampled_from(["hw", "strict"]))
def test_softmax_entropy_and_logsumexp(logits, policy):
    result = outcome("softmax_entropy", lambda: softmax_entropy(logits, "fp64", policy),
                     ("logits",))
    total = outcome("logsumexp", lambda: logsumexp(logits, "fp64", policy), ("logits",))
    assert (result is None) == (total is None)
    if result is None:
        return
    x = np.atleast_1d(np.asarray(logits, dtype=np.float64))
    rows = x.reshape(-1, x.shape[-1])
    for got_h, got_l, row in zip(assert_finite(result).ravel(), assert_finite(total).ravel(),
                                 rows, strict=True):
        with mpmath.workdps(60):
            p = _softmax_reference(row)
            top = max(mpmath.mpf(float(v)) for v in row)
            z = [mpmath.mpf(float(v)) - top for v in row]
            exact_h = -mpmath.fsum(pi * mpmath.log(pi) for pi in p if pi > 0)
            exact_l = top + mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
            scale = (row.size + 8) * 4 * U
            # H = ln Z - sum p z: each term's error is relative to |p z| <= spread
            spread = float(row.max() - row.min())
            assert close(got_h, exact_h, scale, scale * (1 + spread) * 1e-300 + scale * spread
                         * max(p)), (got_h, exact_h)
            assert close(got_l, exact_l, scale, scale), (got_l, exact_l)


@FUZZ
@given(p=arrays())
def test_entropy(p):
    result = outcome("entropy", lambda: entropy(p, "fp64", "hw"), ("probabilities",))
    if result is None:
        return
    q = np.atleast_1d(np.asarray(p, dtype=np.float64))
    for got, row in zip(assert_finite(result).ravel(), q.reshape(-1, q.shape[-1]), strict=True):
        with mpmath.workdps(60):
            exact = -mpmath.fsum(mpmath.mpf(float(v)) * mpmath.log(mpmath.mpf(float(v)))
                                 for v in row if v > 0)
        assert close(got, exact, (row.size + 8) * 4 * U, (row.size + 8) * U), (got, exact)


@FUZZ
@given(x=arrays(), fmt=st.sampled_from(FORMAT_NAMES))
def test_round_to(x, fmt):
    result = outcome("round_to", lambda: round_to(x, fmt), ("x", "format"))
    if result is None:
        return
    given_values = np.asarray(x)
    for got, value in zip(np.asarray(result, dtype=np.float64).ravel(),
                          given_values.astype(np.float64).ravel(), strict=True):
        expected = exact_round(float(value), fmt)
        if math.isnan(expected):
            assert math.isnan(got)
        else:
            assert got == expected, (value, got, expected)


# --- softmax-dispersion ---------------------------------------------------------------------------

def _d(spread, temperature) -> mpmath.mpf:
    return to_mp(spread) / to_mp(temperature)


@FUZZ
@given(n=scalars(1, 2**40, integer=True), spread=scalars(0, 60), temperature=scalars(0.1, 8))
def test_weight_bounds(n, spread, temperature):
    names = ("n", "spread", "temperature")
    bounds = outcome("paper_bounds", lambda: sd.paper_bounds(n, spread, temperature), names)
    high = outcome("max_weight_bound", lambda: sd.max_weight_bound(n, spread, temperature), names)
    low = outcome("min_weight_bound", lambda: sd.min_weight_bound(n, spread, temperature), names)
    assert (bounds is None) == (high is None) == (low is None)
    if bounds is None:
        return
    with mpmath.workdps(60):
        d, size = _d(spread, temperature), to_mp(n)
        exact = {"lower": mpmath.exp(-d) / size, "upper": mpmath.exp(d) / size,
                 "max": 1 / (1 + (size - 1) * mpmath.exp(-d)),
                 "min": 1 / (1 + (size - 1) * mpmath.exp(d))}
    for key, got in (("lower", bounds[0]), ("upper", bounds[1]), ("max", high), ("min", low)):
        got = float(got)
        if exact[key] > 1.7976931348623157e308:
            assert got == math.inf  # the correctly rounded value of a number beyond fp64
            continue
        # d = spread/temperature is rounded once, so e^{+-d} carries d ulps; plus a few more,
        # or a few of the smallest subnormal below the normal range
        rel = (float(d) + 16) * 2 * U
        assert math.isfinite(got) and close(got, exact[key], rel, 4 * 5e-324), (key, got)


@FUZZ
@given(target=scalars(0, 1), spread=scalars(0, 50), temperature=scalars(0.25, 4))
def test_min_size_for_dispersion(target, spread, temperature):
    size = outcome("min_size_for_dispersion",
                   lambda: sd.min_size_for_dispersion(target, spread, temperature),
                   ("target", "spread", "temperature"))
    if size is None:
        return
    assert isinstance(size, int) and size >= 1
    if float(np.float64(to_mp(target))) == 1.0:
        assert size == 2  # alpha_max = 1/(1 + (n - 1) e^-d) < 1 exactly from n = 2
        return
    with mpmath.workdps(40):
        ratio = to_mp(spread) / to_mp(temperature)
    # enough digits for the size and for 1 + (m - 1) e^-d to differ from 1
    with mpmath.workdps(60 + len(str(size)) + int(ratio / mpmath.log(10))):
        t = mpmath.mpf(float(np.float64(to_mp(target))))  # the float the function was given
        d = mpmath.mpf(float(np.float64(to_mp(spread)))) / mpmath.mpf(
            float(np.float64(to_mp(temperature))))

        def reaches(m):  # some logits of this spread give alpha_max >= target at size m
            return 1 / (1 + (m - 1) * mpmath.exp(-d)) >= t

        assert not reaches(size) and (size == 1 or reaches(size - 1))


@FUZZ
@given(entropy_value=st.one_of(scalars(0, 12), arrays(4)))
def test_adaptive_beta(entropy_value):
    result = outcome("adaptive_beta", lambda: sd.adaptive_beta(entropy_value), ("entropy",))
    if result is None:
        return
    h = np.asarray(entropy_value, dtype=np.float64)
    coefficients = [SD_PAPER.value(name) for name in POLY_NAMES]
    expected = np.where(h > SD_PAPER.value("listing.gate"),
                        np.maximum(np.polynomial.polynomial.polyval(h, coefficients[::-1]), 1.0),
                        1.0)
    np.testing.assert_allclose(assert_finite(result), expected, rtol=1e-12, atol=1e-12)


# --- iso-perplexity ------------------------------------------------------------------------------

def _pplx(a, g):
    return -a * mpmath.log(1 - g) - (1 - a) * mpmath.log(g)


@FUZZ
@given(a=scalars(0, 1), gamma=scalars(0, 0.5), s=scalars(0, 1))
def test_iso_perplexity_helpers(a, gamma, s):
    names = ("a", "gamma", "s", "value")
    pplx = outcome("log_perplexity", lambda: iso.log_perplexity(a, gamma), names)
    critical = outcome("critical_accuracy", lambda: iso.critical_accuracy(a, gamma, s), names)
    lowest = outcome("lowest_accepted_accuracy", lambda: iso.lowest_accepted_accuracy(a, gamma),
                     names)
    lunch = outcome("free_lunch", lambda: iso.free_lunch(a, gamma), names)
    symbolic = any(isinstance(v, sp.Basic) and v.free_symbols for v in (a, gamma))
    if symbolic:  # the SymPy path stays symbolic; only a number can be solved for
        assert lowest is None and (pplx is None or isinstance(pplx, sp.Basic))
        return
    assert (pplx is None) == (lowest is None) == (lunch is None)
    if pplx is None:
        return
    with mpmath.workdps(60):
        am, gm = to_mp(a), to_mp(gamma)
        exact = _pplx(am, gm)
        symbolic = isinstance(pplx, sp.Basic)
        assert close(sp.N(pplx, 30) if symbolic else pplx, exact, 16 * U), (pplx, exact)
        assert bool(lunch) == (am + gm > 1), (a, gamma, lunch)
        if isinstance(s, sp.Basic) and s.free_symbols:
            assert critical is None or isinstance(critical, sp.Basic)
        elif critical is not None:
            shifted = gm * (1 - to_mp(s))
            exact_c = (exact + mpmath.log(shifted)) / (mpmath.log(shifted)
                                                       - mpmath.log(1 - shifted))
            value = sp.N(critical, 30) if isinstance(critical, sp.Basic) else critical
            assert close(value, exact_c, 64 * U, 64 * U * abs(exact)), (value, exact_c)
        # a bracketing solver (Illinois), not the code's bisection; the residual is checked
        root = mpmath.findroot(lambda x: -x * mpmath.log(x) - (1 - x) * mpmath.log1p(-x)
                               - exact, (mpmath.mpf("0.5"), 1 - mpmath.mpf(10) ** -50),
                               solver="illinois", verify=False) if exact < mpmath.log(2) \
            else None
        if root is not None:
            residual = -root * mpmath.log(root) - (1 - root) * mpmath.log1p(-root) - exact
            assert abs(residual) < mpmath.mpf(10) ** -40, residual
        a_min, g_min = (root, 1 - root) if root is not None and 1 - root <= gm else (am, gm)
        got = [sp.N(v, 30) if isinstance(v, sp.Basic) else v for v in lowest]
        assert close(got[0], a_min, 64 * U) and close(got[1], g_min, 1e-12), (got, a_min, g_min)


@FUZZ
@given(n=scalars(1, 2**30, integer=True), floor=scalars(0, 1), eta=scalars(0, 10))
def test_corrected_bound(n, floor, eta):
    result = outcome("corrected_bound", lambda: iso.corrected_bound(n, floor, eta),
                     ("n", "floor", "eta"))
    if result is None:
        return
    with mpmath.workdps(60):
        size = to_mp(n)
        exact = -mpmath.log(to_mp(floor)) / size + 2 * to_mp(eta) * (size - 1) / size
    if exact > 1.7976931348623157e308:
        assert float(result) == math.inf  # the correctly rounded value beyond fp64
        return
    assert close(assert_finite(result), exact, 16 * U, 1e-300)


# --- representational-collapse -------------------------------------------------------------------

@FUZZ
@given(n=st.one_of(scalars(1, 400, integer=True), arrays(3)))
def test_alternating_tv(n):
    result = outcome("alternating_tv", lambda: rc.alternating_tv(n), ("n",))
    if result is None:
        return
    for got, size in zip(assert_finite(result).ravel(),
                         np.asarray(n, dtype=np.float64).ravel(), strict=True):
        size = int(size)
        x = [1.0 if i % 2 == 0 else 0.0 for i in range(size)]
        y, z = _softmax_reference(np.array(x)), _softmax_reference(np.array([1 - v for v in x]))
        exact = mpmath.fsum(abs(a - b) for a, b in zip(y, z, strict=True))
        assert close(got, exact, 32 * U, 1e-300), (size, got, exact)


def _causal_stochastic(draw_rows: list[list[float]]) -> np.ndarray:
    n = len(draw_rows)
    matrix = np.zeros((n, n))
    for i, row in enumerate(draw_rows):
        weights = np.asarray(row[: i + 1], dtype=np.float64) + 1e-3
        matrix[i, : i + 1] = weights / weights.sum()
    return matrix


@FUZZ
@given(rows=st.lists(st.lists(st.floats(0, 1), min_size=6, max_size=6), min_size=1, max_size=6),
       layers=st.integers(1, 3), beta1=scalars(0.1, 4), beta2=scalars(0.1, 4),
       beta3=scalars(0.1, 4), sigma=scalars(0, 4), bad=st.one_of(st.none(), arrays(4)))
def test_oversquashing_bound(rows, layers, beta1, beta2, beta3, sigma, bad):
    attention = [_causal_stochastic(rows)] * layers if bad is None else [bad]
    result = outcome("oversquashing_bound",
                     lambda: rc.oversquashing_bound(attention, beta1=beta1, beta2=beta2,
                                                    beta3=beta3, sigma_psi=sigma),
                     ("attention", "beta1", "beta2", "beta3", "sigma_psi"))
    if result is None:
        return
    with mpmath.workdps(40):
        matrix = mpmath.matrix(attention[0].tolist())
        identity = mpmath.eye(matrix.rows)
        b1, b2, b3, s_psi = (to_mp(v) for v in (beta1, beta2, beta3, sigma))
        product = identity
        for _ in range(layers):
            product = (matrix / b1 + identity) * product
        constant = (s_psi / b2 + 1) ** layers / b3
        exact = [constant * product[matrix.rows - 1, i] for i in range(matrix.rows)]
    for got, value in zip(assert_finite(result), exact, strict=True):
        assert close(got, value, 1e-12, 1e-300), (got, value)


@fuzz(share=20)
@given(n=scalars(1, 64, integer=True), k=scalars(0, 8, integer=True), noise=scalars(0, 2),
       seeds=scalars(1, 3, integer=True))
def test_perturbed_softmax_tv(n, k, noise, seeds):
    result = outcome("perturbed_softmax_tv",
                     lambda: rc.perturbed_softmax_tv(n, k, noise, seeds),
                     ("n", "k", "noise", "seeds"))
    if result is not None:
        value = float(assert_finite(result))
        assert 0 <= value <= 2


@fuzz(share=35)
@given(family=st.one_of(st.sampled_from(["repeated", "sampled"]), st.text(max_size=3)),
       n_max=scalars(1, 48, integer=True), fmt=st.sampled_from([*FORMAT_NAMES, "fp4"]),
       d=st.one_of(st.just(16), scalars(1, 16, integer=True)))
def test_final_state_gaps(family, n_max, fmt, d):
    result = outcome("final_state_gaps",
                     lambda: rc.final_state_gaps(family, n_max, d=d, fmt=fmt),
                     ("family", "n_max", "format", "d"))
    if result is not None:
        gaps = assert_finite(result)
        assert gaps.shape == (int(n_max),) and np.all(gaps >= 0)


@pytest.mark.parametrize("fmt", ["fp32", "fp64"])
@pytest.mark.parametrize("ratio", [16.0, 48.0, 64.0, 200.0])
def test_the_softmax_rows_tolerance_covers_large_spreads(fmt, ratio):
    """The hw softmax's error in ulps against the tolerance its rows state (it was 65 ulps
    against 27-29 claimed at spread/T = 48, before the exponentials' argument error entered)."""
    rng = np.random.default_rng(0)
    logits = np.concatenate([[-ratio / 2, ratio / 2], rng.uniform(-ratio / 2, ratio / 2, 62)])
    stored = np.asarray(logits, dtype=DTYPES[fmt])
    got = np.asarray(softmax(stored, fmt, "hw"), dtype=np.float64)
    exact = _softmax_reference(stored.astype(np.float64))
    spacing = [float(np.spacing(DTYPES[fmt](float(e)))) for e in exact]
    worst = max(float(abs(mpmath.mpf(float(g)) - e)) / q
                for g, e, q in zip(got, exact, spacing, strict=True))
    stated = sd._tolerance_ulps(64, get_format(fmt), get_policy("hw"), ratio)
    assert worst <= stated, (worst, stated)

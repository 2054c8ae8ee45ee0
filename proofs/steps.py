"""Steps of a derivation and the methods that check them.

A :class:`Step` states a claim (a SymPy ``Eq``, inequality or ``And`` of them) and how it is
checked (``by``). A step may rest only on the hypotheses and earlier steps it names in ``uses``;
the method receives exactly those claims (``Context.given``) and reports which of them it
consumed, so a premise that played no part is reported as unused. Checking returns a new
:class:`StepResult`; it never mutates the step and never prints. A method that cannot decide
answers ``unchecked``, never ``checked``: SymPy or mpmath raising (an undecidable truth value, an
unsupported limit) or a method's ``NotImplementedError``. Any other exception raised in this
package's own code is a bug and propagates as a ``RuntimeError`` naming the step.

Every check runs under a time and memory budget (:data:`BUDGET_SECONDS`,
:data:`BUDGET_BYTES`, or the step's own ``budget_s``): over it, the step is
``unchecked (timeout)`` or ``unchecked (memory)``, never a hang.

Methods (one function each in :data:`METHODS`):

- ``simplify``: an identity whose difference SymPy simplifies to 0, or an inequality whose
  difference SymPy signs from the symbols' assumptions (interval certification when the step has
  a ``box``);
- ``chain``: ``a <= c`` from named steps ``a <= b`` and ``b <= c`` (any length; equalities and
  strict links allowed); this is how a conclusion is checked *from the steps it names*;
- ``instance``: a named step with its symbols replaced as ``at`` says (a lemma applied); each
  value must meet its symbol's assumptions, and a definition ``Eq(s, expr)`` is not re-instantiated
  without ``s``;
- ``apply``: a monotone function ``at={x: f(x)}`` applied to both sides of a named inequality,
  both sides in the range where ``f'`` is signed;
- ``sum``: a named termwise inequality summed over ``at={j: (lo, hi)}``, a range of whole steps
  within ``j``'s assumptions that is known not to be reversed (or empty, for a strict claim);
- ``limit``, ``series``, ``interval``, ``monotone`` as their docstrings say.

The matching methods read an equality only from an equality, never from an inequality.

Every method but the four matching ones (chain, instance, apply, sum) first substitutes the named
definitions (``Eq(symbol, expr)`` among the used claims)
into the claim, so a step can use a definition by reference.
"""

from __future__ import annotations

import itertools
import os
import pickle
import resource
import selectors
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import mpmath
import sympy as sp
from sympy.core.assumptions import _assume_defined

from proofs import notation
from proofs.certify import certify

__all__ = ["BUDGET_BYTES", "BUDGET_SECONDS", "ERRATUM_STATUSES", "METHODS", "ROLES", "Context",
           "Step", "StepResult", "check_step", "eq", "find_witness", "ge", "gt", "le", "lt"]

ROLES = ("paper", "algebra")
#: Default budget of one step's check.
BUDGET_SECONDS = 60.0
BUDGET_BYTES = 2 * 2**30


@dataclass(frozen=True)
class Step:
    """One claim of a derivation and the method that checks it.

    ``role`` is ``paper`` for a step of the paper's argument and ``algebra`` for a generic fact
    (true whatever the paper says) that a paper step leans on; the two print apart.
    ``box`` maps symbols to ranges ``(lo, hi)``: the domain of an interval check, and where a
    witness is searched for when the claim fails. ``at`` maps symbols to expressions for
    ``instance``. ``erratum`` (printed statements only) says what a failed check means:
    ``refuted``, ``inconsistent`` or ``unconfirmed source``.
    """

    label: str
    claim: sp.Basic
    by: str = "simplify"
    uses: tuple[str, ...] = ()
    cite: str = ""
    box: Mapping[sp.Symbol, tuple[float, float]] | None = None
    note: str = ""
    show: str = ""  # a short form to print when the claim itself is too long to read
    role: str = "paper"
    at: Mapping[sp.Symbol, sp.Basic] | None = None
    budget_s: float | None = None
    erratum: str = ""

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"step {self.label!r} has role={self.role!r}; expected one of "
                             f"{', '.join(ROLES)}")
        if isinstance(self.uses, str):
            raise TypeError(f"step {self.label!r} has uses={self.uses!r}; pass a tuple of labels")
        if self.erratum and self.erratum not in ERRATUM_STATUSES:
            raise ValueError(f"step {self.label!r} has erratum={self.erratum!r}; expected one of "
                             f"{', '.join(ERRATUM_STATUSES)}")
        _refuse_vacuous(self.label, self.claim)

    def __str__(self) -> str:
        return self.show or notation.text(self.claim)


ERRATUM_STATUSES = ("refuted", "inconsistent", "unconfirmed source")


@dataclass(frozen=True)
class StepResult:
    """The outcome of checking one :class:`Step`; ``consumed`` lists the used labels it needed."""

    step: Step
    status: str
    by: str
    witness: dict[str, float] | None = None
    detail: str = ""
    consumed: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.step.label

    @property
    def claim(self) -> sp.Basic:
        return self.step.claim

    @property
    def ok(self) -> bool:
        return self.status == "checked"


@dataclass(frozen=True)
class Context:
    """What a method may consult: the claims of the labels the step uses (label to claim)."""

    given: Mapping[str, sp.Basic] = field(default_factory=dict)


def eq(lhs, rhs) -> sp.Equality:
    """``lhs == rhs`` as a claim, left unevaluated so that it prints as written."""
    return sp.Eq(lhs, rhs, evaluate=False)


def ge(lhs, rhs) -> sp.GreaterThan:
    """``lhs >= rhs`` as a claim, left unevaluated."""
    return sp.GreaterThan(lhs, rhs, evaluate=False)


def gt(lhs, rhs) -> sp.StrictGreaterThan:
    """``lhs > rhs`` as a claim, left unevaluated."""
    return sp.StrictGreaterThan(lhs, rhs, evaluate=False)


def le(lhs, rhs) -> sp.LessThan:
    """``lhs <= rhs`` as a claim, left unevaluated."""
    return sp.LessThan(lhs, rhs, evaluate=False)


def lt(lhs, rhs) -> sp.StrictLessThan:
    """``lhs < rhs`` as a claim, left unevaluated."""
    return sp.StrictLessThan(lhs, rhs, evaluate=False)


def check_step(step: Step, context: Context | None = None) -> StepResult:
    """Check ``step`` with its method, within its budget, and return the result.

    Results are cached on the claim, method, box, substitution and used claims, so a derivation
    rebuilt with one quantity changed re-checks only the steps that quantity reaches.
    """
    context = context or Context()
    method = METHODS.get(step.by)
    if method is None:
        raise ValueError(f"step {step.label!r} has by={step.by!r}; expected one of "
                         f"{', '.join(METHODS)}")
    key = _cache_key(step, context)
    cached = _CACHE.get(key)
    if cached is not None:
        return StepResult(step, *cached)
    result = _within_budget(_checked_by(method), step, context)
    if not result.detail.startswith(("unchecked (timeout)", "unchecked (memory)")):
        _CACHE[key] = (result.status, result.by, result.witness, result.detail, result.consumed)
    return result


_CACHE: dict[tuple, tuple] = {}


def _cache_key(step: Step, context: Context) -> tuple:
    def canonical(mapping):
        if not mapping:
            return ()
        # srepr keeps each symbol's assumptions: x (real) and x (positive) are different keys
        return tuple(sorted((sp.srepr(sp.sympify(k)),
                             sp.srepr(sp.sympify(v)) if not isinstance(v, tuple)
                             else tuple(sp.srepr(sp.sympify(e)) for e in v))
                            for k, v in mapping.items()))

    given = tuple(sorted((label, sp.srepr(claim)) for label, claim in context.given.items()))
    return (sp.srepr(step.claim), step.by, canonical(step.box), canonical(step.at), given,
            step.label)


def _checked_by(method):
    def run(step: Step, context: Context) -> StepResult:
        # chain, instance, apply and sum match used claims as written; the others see the
        # named definitions substituted into the claim
        defined, consumed = ((step, ()) if method in _MATCHING
                             else _substitute_definitions(step, context))
        try:
            result = method(defined, context)
        except (NotImplementedError, TypeError, ValueError, AttributeError,
                RecursionError) as exc:
            if not _raised_by_sympy(exc):
                raise  # raised by this package's own code: a bug, not an undecided claim
            return StepResult(step, "unchecked", step.by,
                              detail=f"SymPy could not decide: {type(exc).__name__}: {exc}")
        return StepResult(step, result.status, result.by, result.witness, result.detail,
                          tuple(dict.fromkeys(consumed + result.consumed)))
    return run


def _raised_by_sympy(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside SymPy or mpmath (they cannot decide a claim, e.g. the
    truth value of a relational with unknown sign) or is an explicit ``NotImplementedError``."""
    if isinstance(exc, NotImplementedError):
        return True
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    origin = frames[-1].filename.replace(os.sep, "/")
    return "/sympy/" in origin or "/mpmath/" in origin


def _substitute_definitions(step: Step, context: Context) -> tuple[Step, tuple[str, ...]]:
    """Replace each symbol that a used ``Eq(symbol, expr)`` defines by its definition."""
    claim, consumed = step.claim, []
    for label, given in context.given.items():
        if isinstance(given, sp.Equality) and isinstance(given.lhs, sp.Symbol) \
                and given.lhs in claim.free_symbols:
            claim = claim.subs(given.lhs, given.rhs)
            consumed.append(label)
    if not consumed:
        return step, ()
    return _replace(step, claim), tuple(consumed)


def _replace(step: Step, claim: sp.Basic) -> Step:
    fields = {name: getattr(step, name) for name in step.__dataclass_fields__}
    fields["claim"] = claim
    obj = object.__new__(Step)  # skip the vacuity check: substitution may well make it trivial
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


class _OverTime(BaseException):
    """Raised by the budget's timer; a BaseException so that no ``except Exception`` inside
    SymPy swallows it."""


def _within_budget(function, step: Step, context: Context) -> StepResult:
    """Run ``function(step, context)`` limited in time and address space: in this process under
    a timer where signals can reach it (the main thread), else in a forked child."""
    seconds = step.budget_s or BUDGET_SECONDS
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM"):
        return _in_process(function, step, context, seconds)
    if not hasattr(os, "fork"):
        return function(step, context)
    return _in_child(function, step, context, seconds)


def _in_process(function, step: Step, context: Context, seconds: float) -> StepResult:
    # SymPy's caches stay warm across steps this way, which a forked child would throw away
    def over_time(signum, frame):
        raise _OverTime

    previous = signal.signal(signal.SIGALRM, over_time)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + BUDGET_BYTES
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return function(step, context)
    except _OverTime:
        return StepResult(step, "unchecked", step.by,
                          detail=f"unchecked (timeout): over the {seconds:g} s budget")
    except MemoryError:
        return StepResult(step, "unchecked", step.by,
                          detail=f"unchecked (memory): over the {BUDGET_BYTES / 2**30:g} GiB "
                                 "budget")
    except Exception as exc:  # a bug in a method
        raise RuntimeError(f"checking step {step.label!r} by {step.by} failed: "
                           f"{type(exc).__name__}: {exc}") from exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _in_child(function, step: Step, context: Context, seconds: float) -> StepResult:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: check, send the pickled result, exit without cleanup
        status = 0
        try:
            os.close(read_end)
            limit = _address_space() + BUDGET_BYTES
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                payload = ("result", function(step, context))
            except MemoryError:
                payload = ("memory", None)
            except BaseException as exc:  # a bug in a method: the parent raises it
                payload = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            data = pickle.dumps(payload)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + seconds
    with os.fdopen(read_end, "rb") as pipe, selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return StepResult(step, "unchecked", step.by,
                                  detail=f"unchecked (timeout): over the {seconds:g} s budget")
            chunk = os.read(pipe.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    if not chunks:
        return StepResult(step, "unchecked", step.by,
                          detail="unchecked (memory): the check ran out of its "
                                 f"{BUDGET_BYTES / 2**30:g} GiB budget")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "memory":
        return StepResult(step, "unchecked", step.by,
                          detail=f"unchecked (memory): over the {BUDGET_BYTES / 2**30:g} GiB "
                                 "budget")
    if kind == "error":
        raise RuntimeError(f"checking step {step.label!r} by {step.by} failed: {value}")
    return StepResult(step, value.status, value.by, value.witness, value.detail, value.consumed)


def _address_space() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _by_simplify(step: Step, context: Context) -> StepResult:
    claim = step.claim
    if isinstance(claim, sp.And):
        parts = [_by_simplify(_replace(step, part), context) for part in claim.args]
        for part in parts:
            if part.status != "checked":
                return StepResult(step, part.status, part.by, part.witness, part.detail)
        return StepResult(step, "checked", "simplify")
    if isinstance(claim, sp.Equality):
        difference = sp.simplify(claim.lhs - claim.rhs)
        if difference == 0 or difference.equals(0) is True:
            return StepResult(step, "checked", "simplify")
        witness = find_witness(claim, step.box)
        if witness is not None:
            return StepResult(step, "failed", "simplify", *witness)
        return StepResult(step, "unchecked", "simplify",
                          detail=f"lhs - rhs simplifies to {difference}, not to 0")
    if isinstance(claim, sp.core.relational.Relational):
        expr, strict = _as_nonnegative(claim)
        expr = sp.simplify(expr)
        sign = expr.is_positive if strict else expr.is_nonnegative
        if sign is True:
            return StepResult(step, "checked", "simplify")
        witness = find_witness(claim, step.box)
        if witness is not None:
            return StepResult(step, "failed", "simplify", *witness)
        if step.box is not None:
            result = _by_interval(step, context)
            return StepResult(step, result.status, "interval", result.witness,
                              "SymPy could not sign it; " + result.detail)
        return StepResult(step, "unchecked", "simplify",
                          detail=f"SymPy cannot decide the sign of {expr}")
    if claim is sp.true:
        return StepResult(step, "checked", "simplify")
    if claim is sp.false:
        return StepResult(step, "failed", "simplify", detail="the claim simplifies to False")
    return StepResult(step, "unchecked", "simplify", detail=f"cannot check {type(claim).__name__}")


def _by_chain(step: Step, context: Context) -> StepResult:
    """``a R c`` from used claims forming a chain ``a R1 b1 R2 ... c``.

    Every conjunct of the claim needs its own chain; the links are the used claims (conjuncts
    included), an equality usable either way. Two ends are the same node when their difference
    simplifies to 0. The chain is strict when any link is.
    """
    links = []  # (low, high, strict, label): low <= high, or low < high when strict
    for label, given in context.given.items():
        for part in _conjuncts(given):
            links += [(*link, label) for link in _as_links(part)]
    consumed: list[str] = []
    details = []
    for part in _conjuncts(step.claim):
        wanted = _as_links(part)
        if not wanted:
            return StepResult(step, "unchecked", "chain",
                              detail=f"cannot read {type(part).__name__} as a chain")
        for low, high, strict in wanted[:1] if not isinstance(part, sp.Equality) else wanted:
            path = _find_path(low, high, strict, links)
            if path is None:
                witness = find_witness(part, step.box) \
                    if isinstance(part, sp.core.relational.Relational) else None
                if witness is not None:
                    return StepResult(step, "failed", "chain", *witness)
                return StepResult(step, "unchecked", "chain",
                                  detail=f"no chain from {low} to {high} through "
                                         f"{', '.join(context.given) or 'no named steps'}")
            consumed += path
            details.append(" -> ".join(f"({label})" for label in path))
    return StepResult(step, "checked", "chain", detail="; ".join(details),
                      consumed=tuple(dict.fromkeys(consumed)))


def _conjuncts(claim: sp.Basic) -> tuple[sp.Basic, ...]:
    return claim.args if isinstance(claim, sp.And) else (claim,)


def _as_links(claim: sp.Basic) -> list[tuple[sp.Expr, sp.Expr, bool]]:
    if isinstance(claim, sp.Equality):
        return [(claim.lhs, claim.rhs, False), (claim.rhs, claim.lhs, False)]
    if isinstance(claim, sp.LessThan | sp.StrictLessThan):
        return [(claim.lhs, claim.rhs, isinstance(claim, sp.StrictLessThan))]
    if isinstance(claim, sp.GreaterThan | sp.StrictGreaterThan):
        return [(claim.rhs, claim.lhs, isinstance(claim, sp.StrictGreaterThan))]
    return []


def _same(a: sp.Expr, b: sp.Expr) -> bool:
    if a == b:
        return True
    difference = sp.expand(a - b)
    if difference == 0:
        return True
    return sp.simplify(difference) == 0


def _find_path(low, high, strict, links) -> list[str] | None:
    """Breadth-first search from ``low`` to ``high``; returns the labels of the links."""
    frontier = [(low, [], False)]
    seen = [low]
    for _ in range(len(links) + 1):
        following = []
        for node, path, is_strict in frontier:
            for a, b, link_strict, label in links:
                if not _same(node, a):
                    continue
                now_strict = is_strict or link_strict
                if _same(b, high) and (now_strict or not strict):
                    return [*path, label]
                if not any(_same(b, s) for s in seen):
                    seen.append(b)
                    following.append((b, [*path, label], now_strict))
        if not following:
            return None
        frontier = following
    return None


def _by_instance(step: Step, context: Context) -> StepResult:
    """The claim is a used claim with ``at``'s substitution applied (sides may be swapped and a
    strict relation weakened)."""
    if not step.at:
        return StepResult(step, "unchecked", "instance", detail="no substitution given (at=...)")
    outside = [f"{key} = {value}" for key, value in step.at.items()
               if not _satisfies(value, key)]
    if outside:
        return StepResult(step, "unchecked", "instance",
                          detail=f"{', '.join(outside)} is not known to meet the symbol's "
                                 "assumptions")
    wanted = _as_links(step.claim)
    for label, given in context.given.items():
        for part in _conjuncts(given):
            if _redefines(part, step.at):
                continue
            for low, high, strict in _as_links(_subs(part, step.at)):
                for w_low, w_high, w_strict in wanted:
                    if _implies(part, strict, step.claim, w_strict) and _same(low, w_low) \
                            and _same(high, w_high):
                        return StepResult(step, "checked", "instance",
                                          detail=f"({label}) at {dict(step.at)}",
                                          consumed=(label,))
    return StepResult(step, "unchecked", "instance",
                      detail="no named claim becomes this one under the substitution")


def _by_apply(step: Step, context: Context) -> StepResult:
    """``f(A) R f(B)`` from a used ``A R B``, for a monotone ``f`` given as ``at={x: f(x)}``.

    SymPy must sign ``f'(x)`` under ``x``'s assumptions, which must make its range an interval
    that holds ``A`` and ``B`` (its lower end below ``A``, its upper end above ``B``), or else
    over the whole real line: increasing keeps the relation, decreasing reverses it.
    """
    if not step.at or len(step.at) != 1:
        return StepResult(step, "unchecked", "apply", detail="at must be {x: f(x)}")
    (variable, function), = step.at.items()
    if not _is_interval(variable):
        return StepResult(step, "unchecked", "apply",
                          detail=f"{variable}'s assumptions do not make its range an interval "
                                 "(declare it real, positive, nonnegative, negative or "
                                 "nonpositive)")
    # x's own range first, then its closure (x >= 0 for x > 0) and the whole line, where f may
    # be monotone as well
    derivative = sp.diff(function, variable)
    domains, seen = [(variable, sp.simplify(derivative), "")], [_facts(variable)]
    wider = ["nonnegative"] if variable.is_positive else \
        ["nonpositive"] if variable.is_negative else []
    for kind in [*wider, "real"]:
        domain = sp.Dummy(variable.name, **{kind: True})
        if _facts(domain) not in seen:
            seen.append(_facts(domain))
            domains.append((domain, sp.simplify(derivative.subs(variable, domain)),
                            f" for {kind} {variable}"))
    signed = [domain for domain in domains if domain[1].is_nonnegative
              or domain[1].is_nonpositive]
    if not signed:
        return StepResult(step, "unchecked", "apply",
                          detail=f"cannot sign f'({variable}) = {domains[0][1]}")
    wanted = _as_links(step.claim)
    for domain, slope, where in signed:
        direction = 1 if slope.is_nonnegative else -1
        for label, given in context.given.items():
            for part in _conjuncts(given):
                for low, high, strict in _as_links(part):
                    if strict and not (slope.is_positive or slope.is_negative):
                        continue
                    if not _holds_between(domain, low, high):
                        continue  # f is known monotone only over the domain's range
                    image = (function.subs(variable, low), function.subs(variable, high))
                    if direction < 0:
                        image = image[::-1]
                    for w_low, w_high, w_strict in wanted:
                        if _implies(part, strict, step.claim, w_strict) \
                                and _same(image[0], w_low) and _same(image[1], w_high):
                            kind = "increasing" if direction > 0 else "decreasing"
                            return StepResult(step, "checked", "apply",
                                              detail=f"f({variable}) = {function} is {kind}"
                                                     f"{where} (f' = {slope}); from ({label})",
                                              consumed=(label,))
    return StepResult(step, "unchecked", "apply",
                      detail="the claim is not f applied to both sides of a named claim, with "
                             f"both sides in the range where f({variable}) is known monotone")


def _holds_between(domain, low, high) -> bool:
    """Whether the interval ``domain``'s assumptions give holds ``low <= high`` (both ends)."""
    if domain.is_extended_positive or domain.is_extended_nonnegative:
        return _satisfies(low, domain)  # and high >= low is in it too
    if domain.is_extended_negative or domain.is_extended_nonpositive:
        return _satisfies(high, domain)
    return _satisfies(low, domain) or _satisfies(high, domain)  # the real line


def _by_sum(step: Step, context: Context) -> StepResult:
    """``sum_j t_j R sum_j u_j`` from a used termwise ``t_j R u_j``, with ``at={j: (lo, hi)}``.

    Each side of the claim must equal the evaluated sum of the same side of the named claim.
    """
    if not step.at or len(step.at) != 1:
        return StepResult(step, "unchecked", "sum", detail="at must be {j: (lo, hi)}")
    (index, (lo, hi)), = step.at.items()
    lo, hi = sp.sympify(lo), sp.sympify(hi)
    size = hi - lo + 1  # the number of terms
    if not _runs_within(index, lo, hi):
        return StepResult(step, "unchecked", "sum",
                          detail=f"{index} = {lo}..{hi} is not known to run in whole steps "
                                 f"over values {index}'s assumptions allow")
    wanted = _as_links(step.claim)
    for label, given in context.given.items():
        for part in _conjuncts(given):
            for low, high, strict in _as_links(part):
                total = (sp.summation(low, (index, lo, hi)),
                         sp.summation(high, (index, lo, hi)))
                for w_low, w_high, w_strict in wanted:
                    # a relation summed over no terms is 0 R 0, true only when R is weak, and
                    # a reversed range (hi < lo - 1) sums with the opposite sign: the range's
                    # size must be known, or a used claim must say lo <= hi
                    known = size.is_positive if w_strict else size.is_nonnegative
                    order = None if known else _ordered(lo, hi, context)
                    if not (known or order):
                        continue
                    if _implies(part, strict, step.claim, w_strict) \
                            and _same(total[0], w_low) and _same(total[1], w_high):
                        return StepResult(step, "checked", "sum",
                                          detail=f"summed ({label}) over {index} = {lo}..{hi}",
                                          consumed=tuple(dict.fromkeys(
                                              (label, order) if order else (label,))))
    return StepResult(step, "unchecked", "sum",
                      detail="the claim is not a named termwise claim summed over the range")


def _facts(term) -> dict[str, bool]:
    """What SymPy knows about ``term``: each assumption it decides, and how."""
    facts = ((fact, getattr(term, f"is_{fact}", None)) for fact in sorted(_assume_defined))
    return {fact: truth for fact, truth in facts if truth is not None}


def _satisfies(value, symbol) -> bool:
    """Whether ``value`` is known to meet every assumption ``symbol`` carries."""
    value = sp.sympify(value)
    return all(getattr(value, f"is_{fact}", None) is truth
               for fact, truth in _facts(symbol).items())


def _assumed(**kwargs) -> dict[str, bool]:
    return _facts(sp.Dummy(**kwargs))


#: Assumption sets whose values form an interval of the real line (apply's variable).
_INTERVALS = [_assumed(real=True), *(_assumed(**{sign: True}) for sign in
                                     ("positive", "nonnegative", "negative", "nonpositive"))]
#: Assumption sets a summation index may carry, and whether they bound it from above (so the
#: range's top must meet them too); anything else (odd, prime, nonzero) is refused.
_INDICES = [(_assumed(**kwargs), upper) for kwargs, upper in (
    ({}, False), ({"integer": True}, False), ({"real": True}, False),
    ({"integer": True, "positive": True}, False), ({"integer": True, "nonnegative": True}, False),
    ({"positive": True}, False), ({"nonnegative": True}, False),
    ({"integer": True, "negative": True}, True), ({"integer": True, "nonpositive": True}, True),
    ({"negative": True}, True), ({"nonpositive": True}, True))]


def _is_interval(variable) -> bool:
    return _facts(variable) in _INTERVALS


def _runs_within(index, lo, hi) -> bool:
    """Whether every term of ``index = lo..hi`` is at a value ``index``'s assumptions allow."""
    upper = next((upper for facts, upper in _INDICES if facts == _facts(index)), None)
    if upper is None or not (hi - lo).is_integer or not _satisfies(lo, index):
        return False
    return not upper or (hi - lo).is_negative or _satisfies(hi, index)


def _ordered(lo, hi, context: Context) -> str | None:
    """The label of a used claim that states ``lo <= hi`` (or ``lo < hi``): the range is not
    empty."""
    return next((label for label, given in context.given.items()
                 for part in _conjuncts(given) for a, b, _ in _as_links(part)
                 if _same(a, lo) and _same(b, hi)), None)


def _implies(part, strict: bool, claim, wanted_strict: bool) -> bool:
    """Whether a link of ``part`` (strict or not) gives the same link of ``claim``: an equality
    only from an equality, a strict relation only from a strict one."""
    if isinstance(claim, sp.Equality):
        return isinstance(part, sp.Equality)
    return strict or not wanted_strict


def _redefines(part, mapping) -> bool:
    """Whether ``mapping`` changes what a definition ``Eq(symbol, expr)`` says but not the symbol
    it defines: the symbol keeps its one value, so such an instance is no instance."""
    if not (isinstance(part, sp.Equality) and isinstance(part.lhs, sp.Symbol)):
        return False
    if any(part.lhs.has(key) for key in mapping):
        return False
    return any(part.rhs.has(key) for key in mapping)


def _subs(claim: sp.Basic, mapping) -> sp.Basic:
    """``claim`` with ``mapping`` substituted side by side, left unevaluated (a relation between
    numbers would otherwise collapse to True or False)."""
    if isinstance(claim, sp.core.relational.Relational):
        return type(claim)(claim.lhs.subs(dict(mapping), simultaneous=True),
                           claim.rhs.subs(dict(mapping), simultaneous=True), evaluate=False)
    return claim.subs(dict(mapping), simultaneous=True)


def _by_limit(step: Step, context: Context) -> StepResult:
    claim = step.claim
    if not (isinstance(claim, sp.Equality) and isinstance(claim.lhs, sp.Limit)):
        return StepResult(step, "unchecked", "limit", detail="expected Eq(Limit(f, x, x0), L)")
    expr, variable, point, direction = claim.lhs.args
    value = sp.limit(expr, variable, point, str(direction))
    if _same(value, claim.rhs):  # oo - oo is nan, not 0: compare as written first
        return StepResult(step, "checked", "limit", detail=f"limit = {value}")
    if isinstance(value, sp.Limit):
        return StepResult(step, "unchecked", "limit", detail="SymPy could not evaluate the limit")
    return StepResult(step, "failed", "limit", detail=f"limit = {value}, not {claim.rhs}")


def _by_series(step: Step, context: Context) -> StepResult:
    """``Eq(f, g + O(h, (x, x0)))`` holds when ``(f - g) / h`` has a finite limit at ``x0``."""
    claim = step.claim
    order = claim.rhs.getO() if isinstance(claim, sp.Equality) else None
    if order is None:
        return StepResult(step, "unchecked", "series", detail="expected Eq(f, g + O(h, (x, x0)))")
    if len(order.variables) != 1:
        return StepResult(step, "unchecked", "series", detail="O(...) in one variable only")
    main = claim.rhs.removeO()
    variable, point = order.variables[0], order.point[0]
    quotient = sp.simplify((claim.lhs - main) / order.expr)
    ratio = sp.limit(quotient, variable, point)
    if ratio.is_finite and point.is_finite and (variable - point).is_nonnegative is not True:
        left = sp.limit(quotient, variable, point, "-")  # O(h) at x0 bounds both sides of x0
        if not left.is_finite:
            ratio = left
    if ratio.is_finite:
        return StepResult(step, "checked", "series", detail=f"(f - g)/h -> {ratio}")
    if ratio.is_infinite:
        return StepResult(step, "failed", "series", detail=f"(f - g)/h -> {ratio}")
    return StepResult(step, "unchecked", "series", detail=f"(f - g)/h -> {ratio}")


def _by_interval(step: Step, context: Context) -> StepResult:
    if step.box is None:
        return StepResult(step, "unchecked", "interval", detail="no box to certify over")
    claims = step.claim.args if isinstance(step.claim, sp.And) else (step.claim,)
    total = 0
    for claim in claims:
        certificate = certify(claim, step.box)
        total += certificate.boxes
        if certificate.status == "refuted":
            named = {s.name: s for s in claim.free_symbols}
            if not all(_allows(named[k], v) for k, v in certificate.witness.items()
                       if k in named):
                return StepResult(step, "unchecked", "interval",
                                  detail=f"the box reaches outside the symbols' assumptions: "
                                         f"{certificate.witness}")
            values = ", ".join(f"{k}={v:.6g}" for k, v in certificate.witness.items())
            return StepResult(step, "failed", "interval", certificate.witness,
                              f"{values}: lhs - rhs = {certificate.value_at_witness:.6g}")
        if certificate.status == "unknown":
            return StepResult(step, "unchecked", "interval",
                              detail=f"{len(certificate.open_boxes)} boxes left open "
                                     f"after {certificate.boxes}")
    return StepResult(step, "checked", "interval", detail=f"{total} boxes")


def _by_monotone(step: Step, context: Context) -> StepResult:
    """``f(x) >= 0`` on ``[x0, oo)`` because ``f(x0) >= 0`` and ``f'(x) >= 0`` for ``x >= x0``.

    The step's ``box`` names the one variable ``x`` and its range ``(x0, oo)``; both facts are
    checked by SymPy's sign reasoning under the symbols' assumptions.
    """
    if step.box is None or len(step.box) != 1:
        return StepResult(step, "unchecked", "monotone", detail="box must name one variable")
    (variable, (start, _)), = step.box.items()
    variable = variable if isinstance(variable, sp.Symbol) else sp.Symbol(str(variable))
    variable = next((s for s in step.claim.free_symbols if s.name == variable.name), variable)
    expr, strict = _as_nonnegative(step.claim)
    if (variable - start).is_nonnegative is not True:
        return StepResult(step, "unchecked", "monotone",
                          detail=f"{variable}'s assumptions allow values below {start}, where "
                                 "the argument says nothing")
    at_start = sp.simplify(expr.subs(variable, start))
    offset = sp.Dummy("t", nonnegative=True)
    slope = sp.simplify(sp.diff(expr, variable).subs(variable, start + offset))
    start_ok = at_start.is_positive if strict else at_start.is_nonnegative
    if start_ok and slope.is_nonnegative:
        return StepResult(step, "checked", "monotone",
                          detail=f"f({start}) = {at_start}, f' = {slope} >= 0")
    witness = find_witness(step.claim, None)
    if witness is not None:
        return StepResult(step, "failed", "monotone", *witness)
    return StepResult(step, "unchecked", "monotone",
                      detail=f"cannot sign f({start}) = {at_start} or f' = {slope}")


METHODS: dict[str, Callable[[Step, Context], StepResult]] = {
    "simplify": _by_simplify,
    "chain": _by_chain,
    "instance": _by_instance,
    "apply": _by_apply,
    "sum": _by_sum,
    "limit": _by_limit,
    "series": _by_series,
    "interval": _by_interval,
    "monotone": _by_monotone,
}

_MATCHING = (_by_chain, _by_instance, _by_apply, _by_sum)


def _refuse_vacuous(label: str, claim: sp.Basic) -> None:
    """A claim that cannot fail is refused when the step is built."""
    if claim is sp.true or claim is True:
        raise ValueError(f"step {label!r}: the claim is already True as written; state what "
                         f"it says, unevaluated (eq, le, ge, ...)")
    if not isinstance(claim, sp.Basic):
        raise TypeError(f"step {label!r}: claim={claim!r} is not a SymPy relation")
    for part in _conjuncts(claim):
        if isinstance(part, sp.core.relational.Relational) and part.lhs == part.rhs:
            raise ValueError(f"step {label!r} compares {part.lhs} with itself; it cannot fail")


def _as_nonnegative(claim: sp.Basic) -> tuple[sp.Expr, bool]:
    if isinstance(claim, sp.GreaterThan | sp.StrictGreaterThan):
        return claim.lhs - claim.rhs, isinstance(claim, sp.StrictGreaterThan)
    if isinstance(claim, sp.LessThan | sp.StrictLessThan):
        return claim.rhs - claim.lhs, isinstance(claim, sp.StrictLessThan)
    raise TypeError(f"cannot turn {type(claim).__name__} into an inequality")


def find_witness(
    claim: sp.Basic, box: Mapping | None = None, *, digits: int = 40
) -> tuple[dict[str, float], str] | None:
    """Search a grid of points for one where ``claim`` is false; return it and a description.

    Points come from ``box`` when given, else from a few values that respect each symbol's
    assumptions (positive, integer). Evaluation is in mpmath at ``digits`` digits.
    """
    symbols = sorted(claim.free_symbols, key=lambda s: s.name)
    if not symbols:  # a closed claim: its two sides are numbers, evaluated to ``digits``
        a, b = sp.N(claim.lhs, digits), sp.N(claim.rhs, digits)
        if not (a.is_real and b.is_real and a.is_Number and b.is_Number):
            return None
        if _relation_holds(claim, mpmath.mpf(str(a)), mpmath.mpf(str(b))):
            return None
        return {}, f"{sp.N(a, 6)} {_NEGATED[type(claim)]} {sp.N(b, 6)}"
    candidates = [_candidates(s, box) for s in symbols]
    lhs, rhs = claim.lhs, claim.rhs
    f_lhs = sp.lambdify(symbols, lhs, "mpmath")
    f_rhs = sp.lambdify(symbols, rhs, "mpmath")
    with mpmath.workdps(digits):
        for combo in itertools.islice(itertools.product(*candidates), 4096):
            try:
                a, b = f_lhs(*combo), f_rhs(*combo)
                if isinstance(a, mpmath.mpc) or isinstance(b, mpmath.mpc):
                    continue
                holds = _relation_holds(claim, mpmath.mpf(a), mpmath.mpf(b))
            except (ZeroDivisionError, ValueError, TypeError, OverflowError):
                continue
            except NameError:  # an undefined function (a norm, a Jacobian): nothing evaluates
                return None
            if not holds:
                point = {s.name: float(v) for s, v in zip(symbols, combo, strict=True)}
                values = ", ".join(f"{k}={v:.6g}" for k, v in point.items())
                relation = _NEGATED[type(claim)]
                detail = f"{values}: {mpmath.nstr(a, 6)} {relation} {mpmath.nstr(b, 6)}"
                return point, detail
    return None


_NEGATED = {sp.Equality: "!=", sp.GreaterThan: "<", sp.StrictGreaterThan: "<=",
            sp.LessThan: ">", sp.StrictLessThan: ">="}


def _relation_holds(claim: sp.Basic, a, b) -> bool:
    scale = max(abs(a), abs(b), mpmath.mpf(1))
    tol = scale * mpmath.mpf(10) ** (-mpmath.mp.dps + 5)
    if isinstance(claim, sp.Equality):
        return abs(a - b) <= tol
    if isinstance(claim, sp.GreaterThan):
        return a >= b - tol
    if isinstance(claim, sp.StrictGreaterThan):
        return a > b - tol
    if isinstance(claim, sp.LessThan):
        return a <= b + tol
    if isinstance(claim, sp.StrictLessThan):
        return a < b + tol
    raise TypeError(f"cannot evaluate {type(claim).__name__}")


def _candidates(symbol: sp.Symbol, box: Mapping | None) -> list:
    if box is not None:
        by_name = {(k.name if isinstance(k, sp.Symbol) else str(k)): v for k, v in box.items()}
        if symbol.name in by_name:
            lo, hi = (mpmath.mpf(v) for v in by_name[symbol.name])
            points = [lo + (hi - lo) * t for t in (0, 0.5, 1, 0.25, 0.75, 0.1, 0.9)]
            points = [mpmath.mpf(int(p)) if symbol.is_integer else p for p in points]
            return [p for p in points if lo <= p <= hi and _allows(symbol, p)]
    if symbol.is_integer:
        values = [1, 2, 3, 5, 10, 100]
    else:
        values = [1, 2, 0.5, 3.7, 0.1, 10]
        if symbol.is_positive is not True and symbol.is_nonnegative is not True:
            values += [-1, -2.5]
    if symbol.is_nonpositive:  # a witness must respect the symbol's sign
        values = [-v for v in values if v > 0]
    return [mpmath.mpf(v) for v in values if _allows(symbol, mpmath.mpf(v))]


def _allows(symbol: sp.Symbol, value) -> bool:
    """Whether ``symbol``'s assumptions allow the number ``value`` (a witness must be one)."""
    return _satisfies(sp.Rational(str(value)), symbol)

"""Mini-batch training of the sparse autoencoders as the reference experiments train them
(Barin Pacela, Joshi et al. 2026, ``models/saes.py::train_sae``; the sae_amortisation notes,
Sec. 2.3), under a format and a precision policy.

Every epoch shuffles the rows of ``X`` and walks them in batches of ``batch_size`` (the last batch
keeps the remainder, as PyTorch's ``DataLoader`` does without ``drop_last``). Each batch is one
step:

1. the forward pass (:mod:`numerics.models.sae`) and the loss ``MSE(X^, X) + gamma R``;
2. the hand-written backward pass (:mod:`numerics.train.sae_backward`), and the decoder gradient
   projected orthogonal to the decoder's columns, ``g_j - (g_j . a_j) a_j``;
3. one AdamW step (:mod:`numerics.train.optimisers`: decoupled weight decay on every trained
   array, biases included, as PyTorch's default parameter group does).

After epoch ``e`` (counted from 0) with ``e % renorm_every == 0``, the decoder's columns are
divided by their norms: the reference tests ``ep % renorm_every == 0`` after each epoch with ``ep``
from 0, so epoch 0 counts (the first renormalisation follows the first epoch, then every
``renorm_every`` epochs). The renormalisation acts on the optimiser's weights (the float32 masters
under ``hw``, rounded after every operation under ``strict``) and keeps Adam's moments, as the
reference divides its parameters in place. ``renorm_every=0`` never renormalises.

An ``mp`` SAE trains its decoder only: its encoder does not enter the loss, and PyTorch's AdamW
skips parameters without a gradient (no weight decay either), so the encoder comes back unchanged.

The shuffles come from ``numpy.random.default_rng(seed)`` (PCG64), one ``permutation`` per epoch,
drawn on the host so that NumPy and CuPy runs see the same batches; the reference draws them with
``torch.randperm``, so its batches (not its algorithm) differ. The optimiser works on all trained
arrays as one flat vector: AdamW is elementwise, so this is the same update with one kernel per
operation instead of one per array.

Records: after every epoch ``e`` with ``e % record_every == 0`` (by default epoch 0 only), after
the last epoch, and in the epoch where training stops, the loop records the epoch's mean batch
``loss``, ``mse`` and ``reg`` (each batch's computed in the format, averaged in Python floats as
the reference averages ``loss.item()``) and whatever ``record(epoch, sae)`` returns for the SAE as
it stands then (after that epoch's renormalisation).

How a run ends: a batch whose loss is not finite stops training before its step, and
:attr:`SAEFit.diverged_at` is that step (counted from 0; ``steps`` if the last step left
non-finite weights); nothing is raised. :attr:`SAEFit.frozen_share` is the share of the trained
parameter entries that the last step left bitwise unchanged in the format (under ``strict``, an
update below half an ulp of its weight vanishes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from numerics._arithmetic import literal, rounder
from numerics._repr import short_repr
from numerics._validate import check_elements, check_int, check_real
from numerics.backend import array_namespace, to_numpy
from numerics.errors import InvalidArgument, InvalidType
from numerics.formats import get_format
from numerics.kernels import load_finite
from numerics.models.sae import SAE, _forward_pass, _loss_terms, _tangent, _to_format
from numerics.policies import get_policy
from numerics.train.loop import MAX_STEPS
from numerics.train.optimisers import Optimiser, init_state, optimiser_step
from numerics.train.sae_backward import _gradients

__all__ = ["SAEFit", "fit_sae"]


@dataclass(frozen=True, eq=False)
class SAEFit:
    """A finished run: the trained SAE (parameters in the format's storage dtype), the records,
    the epochs run (the last one partly if training stopped), the optimiser steps taken, and how
    the run ended (module docstring)."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    sae: SAE
    history: tuple[dict, ...]
    epochs: int
    steps: int
    diverged_at: int | None
    frozen_share: float

    @property
    def final(self) -> dict:
        """The last record."""
        return self.history[-1]


def fit_sae(sae: SAE, X, *, epochs: int, batch_size: int = 64, lr: float = 5e-4,
            weight_decay: float = 0.01, gamma: float = 1e-4, seed: int = 0, fmt="fp32",
            policy="hw", renorm_every: int = 50, record_every: int | None = None,
            record: Callable[[int, SAE], dict] | None = None) -> SAEFit:
    """Train ``sae`` on the rows of ``X`` for ``epochs`` epochs of mini-batch AdamW (module
    docstring) and return the trained SAE with its records.

    The defaults are the reference's: batch 64, lr 5e-4, PyTorch's AdamW weight decay 0.01,
    ``gamma = 1e-4``, renormalisation every 50 epochs.
    """
    if not isinstance(sae, SAE):
        raise InvalidType(f"expected an SAE but got sae={sae!r:.60} (type={type(sae).__name__}); "
                          f"build one with numerics.models.random_sae")
    epochs = check_int(epochs, "epochs", min=1, max=MAX_STEPS)
    batch_size = check_int(batch_size, "batch_size", min=1)
    optimiser = Optimiser("adamw", lr=lr, weight_decay=weight_decay)
    gamma = check_real(gamma, "gamma", min=0.0)
    seed = check_int(seed, "seed", min=0)
    fmt, policy = get_format(fmt), get_policy(policy)
    renorm_every = check_int(renorm_every, "renorm_every", min=0)
    every = epochs if record_every is None else check_int(record_every, "record_every", min=1)
    if record is not None and not callable(record):
        raise InvalidType(f"expected a callable but got record={record!r:.60} "
                          f"(type={type(record).__name__}); pass record(epoch, sae) -> dict")
    xp = array_namespace(X, *sae.params)
    X = xp.asarray(X)
    if X.ndim != 2 or X.shape[1] != sae.W_enc.shape[1]:
        raise InvalidArgument(f"X has shape {tuple(X.shape)}; expected (samples, "
                              f"{sae.W_enc.shape[1]})")
    samples = int(X.shape[0])
    per_epoch = -(-samples // batch_size) if samples else 0
    if epochs * per_epoch > MAX_STEPS:
        raise InvalidArgument(f"epochs={epochs} of {per_epoch} batches would run "
                              f"{epochs * per_epoch} steps; the limit is {MAX_STEPS}: use fewer "
                              f"epochs or a larger batch_size")
    batch = min(batch_size, max(samples, 1))
    size = sum(int(p.size) for p in sae.params)
    pursuit = batch * sae.k * X.shape[1] if sae.kind == "mp" else 0
    check_elements(4 * size + 3 * batch * sae.width + pursuit,
                   f"training an SAE of width {sae.width} on batches of {batch}")
    x_all = load_finite(X, fmt, policy, "X")

    loaded = tuple(policy.load(p, fmt) for p in sae.params)
    trained = (2, 3) if sae.kind == "mp" else tuple(range(len(loaded)))
    shapes = [tuple(loaded[i].shape) for i in trained]
    bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes]).tolist()
    flat = xp.concatenate([xp.asarray(sae.params[i], dtype=fmt.container).reshape(-1)
                           for i in trained])
    state = init_state(optimiser, (flat,), fmt, policy)

    def unpack(vector) -> tuple:
        full = list(loaded)
        for slot, i in enumerate(trained):
            full[i] = vector[bounds[slot]: bounds[slot + 1]].reshape(shapes[slot])
        return tuple(full)

    def current() -> SAE:
        stored = [policy.output(w, fmt) for w in unpack(_to_format(state.weights[0], fmt))]
        return sae.with_params(stored)

    decoder = trained.index(2)
    rng = np.random.default_rng(seed)
    history, diverged_at, step, before, after = [], None, 0, None, None
    epoch = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(epochs):
            order = rng.permutation(samples)
            order = order if xp is np else xp.asarray(order)
            sums = [0.0, 0.0, 0.0]
            batches = 0
            for start in range(0, samples, batch_size):
                x = x_all[order[start: start + batch_size]]
                weights = unpack(_to_format(state.weights[0], fmt))
                forward = _forward_pass(sae, weights, x, fmt, policy)
                terms = [float(v) for v in _loss_terms(sae.kind, forward, x, gamma)]
                sums = [a + b for a, b in zip(sums, terms, strict=True)]
                batches += 1
                if not math.isfinite(terms[0]):
                    diverged_at = step
                    break
                grads = _gradients(sae, forward, x, gamma, 1.0)
                grads = [grads[i] for i in trained]
                grads[decoder] = _tangent(grads[decoder], weights[2], fmt, policy)
                flat_grad = xp.concatenate([g.reshape(-1) for g in grads])
                before = state.weights[0]
                _, state = optimiser_step(optimiser, state, (flat_grad,))
                after = state.weights[0]
                step += 1
            if diverged_at is None and renorm_every and epoch % renorm_every == 0:
                state = replace(state, weights=(_renormalised(state.weights[0], bounds[decoder],
                                                              shapes[decoder], fmt, policy),))
            last = diverged_at is not None or epoch == epochs - 1
            if last or epoch % every == 0:
                means = [s / batches for s in sums]
                extra = record(epoch, current()) if record is not None else {}
                history.append({"epoch": epoch, "loss": means[0], "mse": means[1],
                                "reg": means[2], **extra})
            if diverged_at is not None:
                break
    if diverged_at is None and not bool(xp.all(xp.isfinite(state.weights[0]))):
        diverged_at = step
    frozen = 0.0
    if before is not None:
        same = to_numpy(policy.output(before, fmt) == policy.output(after, fmt))
        frozen = float(np.count_nonzero(same)) / same.size
    return SAEFit(current(), tuple(history), epoch + 1, step, diverged_at, frozen)


def _renormalised(vector, offset: int, shape: tuple, fmt, policy):
    """A copy of the flat weights with the decoder's columns divided by their norms (clamped at
    1e-8), computed as the policy computes (no rounding to the format under ``hw``: masters)."""
    xp = array_namespace(vector)
    r = rounder(fmt, policy)
    size = shape[0] * shape[1]
    a = vector[offset: offset + size].reshape(shape)
    norms = r(xp.sqrt(policy.sum(r(a * a), fmt, axis=0, keepdims=True)))
    out = xp.array(vector, copy=True)
    out[offset: offset + size] = r(a / xp.maximum(norms, literal(1e-8, a, fmt, policy))).reshape(-1)
    return out

"""A full-batch training loop for the MLP classifier, under a format and a precision policy.

Each step is one forward pass (:func:`numerics.models.mlp.mlp_forward`), one hand-written backward
pass (:func:`numerics.train.backward.mlp_backward`) and one optimiser step
(:func:`numerics.train.optimisers.optimiser_step`), all in ``fmt`` under ``policy``. Every
``record_every`` steps, and after the last, the loop records the cross-entropy, the training
accuracy and whatever ``record(step, model, forward)`` returns.

A run that leaves the format's range is not an error: the step at which the logits or the weights
stop being finite is kept in :attr:`Fit.diverged_at` and training stops there. A run whose updates
no longer change the stored weights is kept too: :attr:`Fit.frozen_share` is the share of stored
parameter entries the last step left bitwise unchanged (under ``strict``, an update below half an
ulp of its weight vanishes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from numerics._repr import short_repr
from numerics._validate import check_int, check_real
from numerics.backend import array_namespace, to_numpy
from numerics.models.mlp import MLP, check_labels, cross_entropy, mlp_forward
from numerics.train.backward import mlp_backward
from numerics.train.optimisers import Optimiser, init_state, optimiser_step

__all__ = ["Fit", "MAX_STEPS", "fit_classifier"]

#: The most steps one call runs.
MAX_STEPS = 1_000_000


@dataclass(frozen=True, eq=False)
class Fit:
    """A finished run: the trained model, the records, and how the run ended."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    model: MLP
    history: tuple[dict, ...]
    steps: int
    diverged_at: int | None
    frozen_share: float

    @property
    def final(self) -> dict:
        """The last record."""
        return self.history[-1]


def fit_classifier(model: MLP, X, y, optimiser: Optimiser, *, steps: int,
                   temperature: float = 1.0, fmt="fp32", policy="hw", loss_scale: float = 1.0,
                   record_every: int | None = None,
                   record: Callable[[int, MLP, object], dict] | None = None) -> Fit:
    """Train ``model`` on all rows of ``X`` with labels ``y`` for ``steps`` optimiser steps."""
    steps = check_int(steps, "steps", min=1, max=MAX_STEPS)
    temperature = check_real(temperature, "temperature", min=0.0, strict_min=True)
    loss_scale = check_real(loss_scale, "loss_scale", min=0.0, strict_min=True)
    every = steps if record_every is None else check_int(record_every, "record_every", min=1)
    xp = array_namespace(X, *model.params)
    X = xp.asarray(X)
    labels = check_labels(y, (X.shape[0], model.sizes[-1]), xp)
    state = init_state(optimiser, model.params, fmt, policy)
    model = model.with_params(tuple(state.policy.output(w, state.fmt) for w in state.weights))
    history, diverged_at, frozen = [], None, 0.0

    def note(step: int, forward) -> None:
        loss = float(to_numpy(cross_entropy(forward.z, labels, fmt, policy,
                                            temperature=temperature), np.float64))
        accuracy = float(to_numpy(xp.mean(xp.argmax(forward.z, axis=-1) == labels), np.float64))
        extra = record(step, model, forward) if record is not None else {}
        history.append({"step": step, "loss": loss, "train_accuracy": accuracy, **extra})

    for step in range(steps + 1):
        forward = mlp_forward(model, X, fmt, policy)
        finite = bool(xp.all(xp.isfinite(forward.z)))
        if step % every == 0 or step == steps or not finite:
            note(step, forward)
        if not finite:
            diverged_at = step
            break
        if step == steps:
            break
        grads = mlp_backward(model, forward, labels, temperature=temperature,
                             loss_scale=loss_scale)
        params, state = optimiser_step(optimiser, state, grads, grad_scale=loss_scale)
        before = model.params
        model = model.with_params(params)
        changed = sum(int(xp.sum(a != b)) for a, b in zip(params, before, strict=True))
        frozen = 1.0 - changed / sum(int(p.size) for p in params)
    return Fit(model, tuple(history), step, diverged_at, frozen)

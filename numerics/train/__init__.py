"""Training: hand-written backward passes, a gradient checker, optimisers under a policy, and a
full-batch training loop."""

from numerics.train.backward import mlp_backward
from numerics.train.gradcheck import GradCheck, gradcheck
from numerics.train.loop import Fit, fit_classifier
from numerics.train.optimisers import (
    OPTIMISERS,
    Optimiser,
    OptimiserState,
    init_state,
    optimiser_step,
)
from numerics.train.sae_backward import sae_backward

__all__ = [
    "Fit",
    "GradCheck",
    "OPTIMISERS",
    "Optimiser",
    "OptimiserState",
    "gradcheck",
    "fit_classifier",
    "init_state",
    "mlp_backward",
    "optimiser_step",
    "sae_backward",
]

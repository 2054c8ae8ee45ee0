"""Training: hand-written backward passes, a gradient checker, optimisers under a policy, a
full-batch training loop for the MLP and a mini-batch one for the sparse autoencoders."""

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
from numerics.train.sae_loop import SAEFit, fit_sae

__all__ = [
    "Fit",
    "GradCheck",
    "OPTIMISERS",
    "Optimiser",
    "OptimiserState",
    "SAEFit",
    "gradcheck",
    "fit_classifier",
    "fit_sae",
    "init_state",
    "mlp_backward",
    "optimiser_step",
    "sae_backward",
]

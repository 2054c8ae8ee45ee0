"""Training: hand-written backward passes, a gradient checker, and optimisers under a policy."""

from numerics.train.backward import mlp_backward, sae_backward
from numerics.train.gradcheck import GradCheck, gradcheck
from numerics.train.optimisers import (
    OPTIMISERS,
    Optimiser,
    OptimiserState,
    init_state,
    optimiser_step,
)

__all__ = [
    "GradCheck",
    "OPTIMISERS",
    "Optimiser",
    "OptimiserState",
    "gradcheck",
    "init_state",
    "mlp_backward",
    "optimiser_step",
    "sae_backward",
]

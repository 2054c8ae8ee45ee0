"""Models shared by the theorems: an MLP with a softmax cross-entropy head, sparse autoencoders.

Every forward pass takes a format and a policy and runs on NumPy or CuPy (the arrays' namespace).
"""

from numerics.models.mlp import (
    ACTIVATIONS,
    MLP,
    MLPForward,
    activation,
    activation_derivative,
    cross_entropy,
    mlp_forward,
    random_mlp,
)
from numerics.models.sae import (
    SAE,
    SAE_KINDS,
    SAEForward,
    SAELoss,
    normalise_columns,
    random_sae,
    sae_forward,
    sae_loss,
    tangent_projection,
)

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "MLPForward",
    "SAE",
    "SAEForward",
    "SAELoss",
    "SAE_KINDS",
    "activation",
    "activation_derivative",
    "cross_entropy",
    "mlp_forward",
    "normalise_columns",
    "random_mlp",
    "random_sae",
    "sae_forward",
    "sae_loss",
    "tangent_projection",
]

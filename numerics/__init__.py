"""Array backend, floating-point formats and precision policies, kernels, sweeps, result store."""

from numerics.backend import BACKENDS, array_namespace, get_backend, to_numpy
from numerics.formats import FORMAT_NAMES, FORMATS, Format, get_format, round_to
from numerics.kernels import entropy, logsumexp, softmax, softmax_entropy
from numerics.policies import POLICIES, POLICY_NAMES, Policy, get_policy
from numerics.sweep import ArtifactStore, Cell, ResultStore, Sweep, executor_spec, grid, run_sweep

__all__ = [
    "ArtifactStore",
    "BACKENDS",
    "FORMATS",
    "FORMAT_NAMES",
    "POLICIES",
    "POLICY_NAMES",
    "Cell",
    "Format",
    "Policy",
    "ResultStore",
    "Sweep",
    "array_namespace",
    "entropy",
    "executor_spec",
    "get_backend",
    "get_format",
    "get_policy",
    "grid",
    "logsumexp",
    "round_to",
    "run_sweep",
    "softmax",
    "softmax_entropy",
    "to_numpy",
]

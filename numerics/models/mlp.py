"""A multilayer perceptron with a softmax cross-entropy head at a temperature, under a format and a
precision policy (the network of "Unpacking Softmax", Masarczyk et al. 2025, Sec. 2).

Row convention (a batch of ``N`` samples is ``N`` rows), PyTorch's weight layout:

- ``h_0 = X`` (``N x d_0``); for every hidden layer ``i = 1..L-1``:
  ``a_i = h_{i-1} W_i^T + b_i`` and ``h_i = phi(a_i)`` with ``W_i`` of shape ``(d_i, d_{i-1})``;
- the logits are ``Z = h_{L-1} W_L^T + b_L`` (``N x C``);
- the loss is ``CE_T(Z, y) = (1/N) sum_n [log sum_c exp(Z_nc / T) - Z_{n y_n} / T]``.

``phi`` is ``relu(x) = max(x, 0)`` or the tanh form of GELU,
``gelu(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (PyTorch's ``approximate="tanh"``;
NumPy has no ``erf``). Every linear layer is one kernel (a matrix product accumulated as the policy
says, plus the bias, rounded once), every activation another; under ``strict`` each operation
inside a kernel is rounded too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from numerics._arithmetic import literal, rounder
from numerics._repr import short_repr
from numerics._validate import check_choice, check_elements, check_int, check_real
from numerics.backend import array_namespace, get_backend
from numerics.errors import InvalidArgument
from numerics.formats import Format, get_format
from numerics.kernels import load_finite
from numerics.policies import Policy, get_policy

__all__ = ["ACTIVATIONS", "MLP", "MLPForward", "activation", "activation_derivative",
           "check_labels", "cross_entropy", "linear", "mlp_forward", "random_mlp"]

ACTIVATIONS: tuple[str, ...] = ("relu", "gelu")
INITS: tuple[str, ...] = ("he", "uniform")
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


@dataclass(frozen=True, eq=False)
class MLP:
    """Weights ``W_i`` ``(d_i, d_{i-1})`` and biases ``b_i`` ``(d_i,)``, NumPy or CuPy arrays."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    weights: tuple
    biases: tuple
    activation: str = "relu"

    def __post_init__(self):
        check_choice(self.activation, ACTIVATIONS, "activation")
        if not self.weights or len(self.weights) != len(self.biases):
            raise InvalidArgument(f"an MLP needs one bias per weight matrix and at least one layer;"
                                  f" got {len(self.weights)} weights, {len(self.biases)} biases")
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise InvalidArgument(f"layer {i}: weight {w.shape} and bias {b.shape} do not fit;"
                                      f" expected (d_out, d_in) and (d_out,)")
            if i and w.shape[1] != self.weights[i - 1].shape[0]:
                raise InvalidArgument(f"layer {i} takes {w.shape[1]} inputs but layer {i - 1} "
                                      f"gives {self.weights[i - 1].shape[0]}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """``(d_0, d_1, ..., C)``."""
        return (self.weights[0].shape[1], *(w.shape[0] for w in self.weights))

    @property
    def params(self) -> tuple:
        """The parameters in a fixed order: ``(W_1, b_1, W_2, b_2, ...)``."""
        return tuple(p for pair in zip(self.weights, self.biases, strict=True) for p in pair)

    def with_params(self, params) -> MLP:
        """A copy of this network holding ``params`` (ordered as :attr:`params`)."""
        params = tuple(params)
        if len(params) != 2 * len(self.weights):
            raise InvalidArgument(f"params has {len(params)} arrays; expected "
                                  f"{2 * len(self.weights)} (W_1, b_1, ...)")
        return MLP(params[0::2], params[1::2], self.activation)


@dataclass(frozen=True, eq=False)
class MLPForward:
    """One forward pass: every intermediate as a value of ``fmt`` held in its compute container
    (float64 for fp64, else float32), which the backward pass reads. :attr:`features` and
    :attr:`logits` give them in the format's storage dtype."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    inputs: object
    preactivations: tuple  # a_1 .. a_{L-1}
    activations: tuple  # h_1 .. h_{L-1}
    z: object  # the logits
    fmt: Format
    policy: Policy

    @property
    def features(self) -> tuple:
        """Every hidden layer's features ``h_1 .. h_{L-1}`` in the format's storage dtype."""
        return tuple(self.policy.output(h, self.fmt) for h in self.activations)

    @property
    def logits(self):
        """The logits ``Z`` in the format's storage dtype."""
        return self.policy.output(self.z, self.fmt)


def random_mlp(sizes, *, activation: str = "relu", init: str = "he", scale: float = 1.0,
               seed: int = 0, backend: str | None = None) -> MLP:
    """Return an MLP with layer widths ``sizes = (d_0, ..., C)`` and seeded weights (float64).

    ``init="he"``: ``W_i ~ N(0, 2 / d_{i-1})``, ``b_i = 0`` (He et al. 2015);
    ``init="uniform"``: ``W_i, b_i ~ U(-1/sqrt(d_{i-1}), 1/sqrt(d_{i-1}))`` (PyTorch's ``Linear``).
    ``scale`` multiplies every weight (the initialisation scale sets the logits norm, an implicit
    temperature). The draws come from ``numpy.random.default_rng(seed)`` on the host, so NumPy and
    CuPy get the same network.
    """
    sizes = [check_int(s, f"sizes[{i}]", min=1) for i, s in enumerate(sizes)]
    if len(sizes) < 2:
        raise InvalidArgument(f"sizes={sizes!r} needs at least an input and an output width")
    check_elements(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True)),
                   f"an MLP with sizes={sizes!r}"[:80])
    check_choice(activation, ACTIVATIONS, "activation")
    check_choice(init, INITS, "init")
    scale = check_real(scale, "scale", min=0.0, strict_min=True)
    seed = check_int(seed, "seed", min=0)
    xp = get_backend(backend)
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        if init == "he":
            w = rng.standard_normal((fan_out, fan_in)) * math.sqrt(2.0 / fan_in)
            b = np.zeros(fan_out)
        else:
            bound = 1.0 / math.sqrt(fan_in)
            w = rng.uniform(-bound, bound, (fan_out, fan_in))
            b = rng.uniform(-bound, bound, fan_out)
        weights.append(xp.asarray(w * scale))
        biases.append(xp.asarray(b))
    return MLP(tuple(weights), tuple(biases), activation)


def mlp_forward(model: MLP, X, fmt: Format | str = "fp32",
                policy: Policy | str = "hw") -> MLPForward:
    """Run ``model`` on the rows of ``X`` and keep every layer's pre-activations and features."""
    fmt, policy = get_format(fmt), get_policy(policy)
    xp = array_namespace(X, *model.params)
    X = xp.asarray(X)
    if X.ndim != 2 or X.shape[1] != model.sizes[0]:
        raise InvalidArgument(f"X has shape {tuple(X.shape)}; expected (samples, "
                              f"{model.sizes[0]})")
    inputs = h = load_finite(X, fmt, policy, "X")
    pre, post = [], []
    for w, b in zip(model.weights[:-1], model.biases[:-1], strict=True):
        pre.append(linear(h, policy.load(w, fmt), policy.load(b, fmt), fmt, policy))
        h = activation(pre[-1], model.activation, fmt, policy)
        post.append(h)
    z = linear(h, policy.load(model.weights[-1], fmt), policy.load(model.biases[-1], fmt), fmt,
               policy)
    return MLPForward(inputs, tuple(pre), tuple(post), z, fmt, policy)


def linear(h, w, b, fmt: Format, policy: Policy):
    """``h W^T + b`` as one kernel: the product accumulated as ``policy`` says, plus the bias,
    rounded to ``fmt`` once (``strict`` also rounds the product)."""
    return fmt.round(policy.matmul(h, w.T, fmt) + b)


def activation(a, name: str, fmt: Format | str, policy: Policy | str):
    """``phi(a)`` elementwise as one kernel (``relu`` or tanh-form ``gelu``)."""
    fmt, policy = get_format(fmt), get_policy(policy)
    check_choice(name, ACTIVATIONS, "activation")
    xp = array_namespace(a)
    if name == "relu":
        return xp.maximum(a, xp.zeros((), dtype=a.dtype))  # exact in every format
    r = rounder(fmt, policy)
    c, k, half = (literal(v, a, fmt, policy) for v in (_GELU_C, _GELU_A, 0.5))
    inner = r(c * r(a + r(k * r(r(a * a) * a))))
    return fmt.round(r(r(half * a) * r(1 + r(xp.tanh(inner)))))


def activation_derivative(a, name: str, fmt: Format | str, policy: Policy | str):
    """``phi'(a)``: ``1[a > 0]`` for ``relu``; for tanh-form ``gelu``, with
    ``t = tanh(c (a + k a^3))``, ``phi' = (1 + t)/2 + a/2 (1 - t^2) c (1 + 3 k a^2)``."""
    fmt, policy = get_format(fmt), get_policy(policy)
    check_choice(name, ACTIVATIONS, "activation")
    xp = array_namespace(a)
    if name == "relu":
        return (a > 0).astype(a.dtype)
    r = rounder(fmt, policy)
    c, k, k3, half = (literal(v, a, fmt, policy) for v in (_GELU_C, _GELU_A, 3 * _GELU_A, 0.5))
    square = r(a * a)
    t = r(xp.tanh(r(c * r(a + r(k * r(square * a))))))
    slope = r(c * r(1 + r(k3 * square)))
    tail = r(r(r(half * a) * r(1 - r(t * t))) * slope)
    return fmt.round(r(r(half * r(1 + t)) + tail))


def cross_entropy(logits, labels, fmt: Format | str = "fp32", policy: Policy | str = "hw", *,
                  temperature: float = 1.0):
    """Mean softmax cross-entropy at temperature ``T``:
    ``(1/N) sum_n [log sum_c exp(Z_nc / T) - Z_{n y_n} / T]``, computed as
    ``m + log sum_c exp(Z_nc/T - m) - Z_{n y_n}/T`` with ``m = max_c Z_nc / T``; returned as a 0-d
    array in the format's storage dtype."""
    fmt, policy = get_format(fmt), get_policy(policy)
    temperature = check_real(temperature, "temperature", min=0.0, strict_min=True)
    xp = array_namespace(logits, labels)
    z = policy.load(xp.asarray(logits), fmt)
    labels = check_labels(labels, z.shape, xp)
    r = rounder(fmt, policy)
    scaled = r(z / literal(temperature, z, fmt, policy)) if temperature != 1.0 else z
    top = xp.max(scaled, axis=-1, keepdims=True)
    e = r(xp.exp(r(scaled - top)))
    log_total = r(xp.log(policy.sum(e, fmt, axis=-1))) + top[:, 0]
    picked = xp.take_along_axis(scaled, labels[:, None], axis=-1)[:, 0]
    per_sample = fmt.round(r(r(log_total) - picked))
    mean = policy.sum(per_sample, fmt, axis=0) / literal(z.shape[0], z, fmt, policy)
    return policy.output(mean, fmt)


def check_labels(labels, shape: tuple, xp):
    """Return ``labels`` as integers ``0 <= y_n < C``, one per row of a ``shape = (N, C)`` array."""
    labels = xp.asarray(labels)
    if labels.shape != (shape[0],) or labels.dtype.kind not in "iu":
        raise InvalidArgument(f"labels have shape {tuple(labels.shape)} and dtype {labels.dtype}; "
                              f"expected {shape[0]} integer class indices")
    if labels.size and (int(xp.min(labels)) < 0 or int(xp.max(labels)) >= shape[1]):
        raise InvalidArgument(f"labels range over [{int(xp.min(labels))}, {int(xp.max(labels))}]"
                              f"; expected classes 0..{shape[1] - 1}")
    return labels.astype(np.int64)

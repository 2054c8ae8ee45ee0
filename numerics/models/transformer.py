"""A decoder-only Transformer (Barbero et al., NeurIPS 2024, Section 2) under a format and a policy.

Layer ``l`` of ``L``, for every position ``i`` (causal: keys ``j <= i``), Pre-LN with residuals:

- ``z_i = v_i + sum_h W_O^h sum_{j<=i} alpha^h_ij W_V^h norm_1(v_j)``,
- ``alpha^h_ij = softmax_j(q^h_i . k^h_j / sqrt(d_head) + b^h_ij)``, ``q^h_i = W_Q^h norm_1(v_i)``,
  ``k^h_j = W_K^h norm_1(v_j)``,
- ``v_i^(l+1) = z_i + psi(norm_2(z_i))`` with ``psi(x) = W_2 relu(W_1 x + b_1) + b_2``,
- ``y_i = norm_3(v_i^(L))``.

The paper writes the kernel as ``k(q_i, k_j, p_ij)``: positional information enters the attention
logits only, never the residual stream. Accordingly ``"sinusoidal"`` adds the absolute encoding to
``norm_1(v)`` before ``W_Q`` and ``W_K`` (not to the values), ``"rope"`` rotates queries and keys,
``"alibi"`` adds ``b^h_ij = -m_h (i - j)`` with ``m_h = 2^{-8h/H}``, and ``"nope"`` adds nothing.

Every kernel (a norm, a projection, the scores, the softmax, the weighted sum, the MLP, a residual
addition; :mod:`numerics.models.layers`) computes as the policy says and rounds its output to the
format, as unfused eager code does. :func:`forward` runs one sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from numerics._repr import short_repr
from numerics._validate import (
    check_choice,
    check_elements,
    check_finite,
    check_int,
    check_real,
    check_row_stochastic,
)
from numerics.backend import array_namespace
from numerics.errors import InvalidArgument, InvalidType
from numerics.formats import Format, get_format
from numerics.models.layers import LayerOps, alibi_slopes, layer_norm, sinusoidal_encoding
from numerics.policies import Policy, get_policy

__all__ = ["PE_NAMES", "Forward", "Layer", "Transformer", "alibi_slopes", "check_tokens",
           "forward", "layer_norm", "random_transformer", "sinusoidal_encoding"]

PE_NAMES: tuple[str, ...] = ("nope", "sinusoidal", "rope", "alibi")
NORM_NAMES: tuple[str, ...] = ("layer", "none")


@dataclass(frozen=True, eq=False)
class Layer:
    """The weights of one layer, as float64 NumPy arrays (see the module docstring).

    ``w_q``, ``w_k``, ``w_v``: ``(heads, d, d_head)``; ``w_o``: ``(heads * d_head, d)``;
    ``w_1``: ``(d, d_ff)``, ``w_2``: ``(d_ff, d)`` and biases, or ``None`` for no MLP (``psi = 0``);
    ``gain_1``/``bias_1`` and ``gain_2``/``bias_2``: the affine parts of ``norm_1`` and ``norm_2``.
    """

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    w_q: np.ndarray
    w_k: np.ndarray
    w_v: np.ndarray
    w_o: np.ndarray
    w_1: np.ndarray | None = None
    b_1: np.ndarray | None = None
    w_2: np.ndarray | None = None
    b_2: np.ndarray | None = None
    gain_1: np.ndarray | None = None
    bias_1: np.ndarray | None = None
    gain_2: np.ndarray | None = None
    bias_2: np.ndarray | None = None

    def __post_init__(self):
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _as_float64(value))

    @property
    def has_mlp(self) -> bool:
        """Whether the layer has an MLP (``psi``); without one ``v^(l+1) = z``."""
        return self.w_1 is not None


@dataclass(frozen=True, eq=False)
class Transformer:
    """A decoder-only Transformer: token embeddings, layers, the final norm and the encoding.

    Build one with :func:`random_transformer`, or by hand (every array float64, shapes as in
    :class:`Layer`); the constructor checks shapes and finiteness.
    """

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    embedding: np.ndarray  # (vocab, d)
    layers: tuple[Layer, ...]
    pe: str = "nope"
    norm: str = "layer"  # "layer": LayerNorm (x - mean) / sqrt(var + norm_eps); "none": identity
    gain_out: np.ndarray | None = None
    bias_out: np.ndarray | None = None
    norm_eps: float = 1e-5
    rope_base: float = 10000.0

    def __post_init__(self):
        check_choice(self.pe, PE_NAMES, "pe")
        check_choice(self.norm, NORM_NAMES, "norm")
        check_real(self.norm_eps, "norm_eps", min=0.0)
        check_real(self.rope_base, "rope_base", min=1.0)
        embedding = _as_float64(self.embedding)
        object.__setattr__(self, "embedding", embedding)
        object.__setattr__(self, "layers", tuple(self.layers))
        if embedding.ndim != 2 or embedding.size == 0:
            raise InvalidArgument(f"embedding has shape {embedding.shape}; expected (vocab, d)")
        if not self.layers:
            raise InvalidArgument("layers=() is empty; give at least one Layer")
        check_finite(embedding, "embedding")
        d = embedding.shape[1]
        for index, layer in enumerate(self.layers):
            _check_layer(layer, d, index)
        heads, _, d_head = np.shape(self.layers[0].w_q)
        if self.pe == "rope" and d_head % 2:
            raise InvalidArgument(f"pe='rope' needs an even d_head but got d_head={d_head}")
        if self.pe == "sinusoidal" and d % 2:
            raise InvalidArgument(f"pe='sinusoidal' needs an even d but got d={d}")
        for name in ("gain_out", "bias_out"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, value := _as_float64(value))
            if value is not None and np.shape(value) != (d,):
                raise InvalidArgument(f"{name} has shape {np.shape(value)}; expected ({d},)")

    @property
    def d(self) -> int:
        """The model width."""
        return int(self.embedding.shape[1])

    @property
    def vocab(self) -> int:
        """The number of token ids."""
        return int(self.embedding.shape[0])

    @property
    def heads(self) -> int:
        """Attention heads per layer."""
        return int(np.shape(self.layers[0].w_q)[0])

    @property
    def d_head(self) -> int:
        """The width of each head's queries, keys and values."""
        return int(np.shape(self.layers[0].w_q)[2])


@dataclass(frozen=True)
class Forward:
    """The result of :func:`forward`: final states ``v^(L)`` and outputs ``y = norm_3(v^(L))``
    (``(n, d)``, in the format's storage dtype), and with ``trace`` one dict per layer."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    states: object
    outputs: object
    trace: tuple[dict, ...] = ()


def random_transformer(
    *,
    vocab: int,
    d: int,
    layers: int = 1,
    heads: int = 1,
    d_head: int | None = None,
    d_ff: int | None = None,
    pe: str = "nope",
    seed: int = 0,
    value_projection: bool = True,
    mlp: bool = True,
    norm: str = "layer",
) -> Transformer:
    """Return a Transformer with seeded Gaussian weights.

    Embeddings are ``N(0, 1)``; ``W_Q``, ``W_K``, ``W_V`` have ``N(0, 1/d)`` entries, ``W_O``
    ``N(0, 1/(heads d_head))``, ``W_1`` ``N(0, 2/d)`` and ``W_2`` ``N(0, 1/d_ff)``; biases are 0 and
    norm gains 1. ``d_head`` defaults to ``d / heads`` and ``d_ff`` to ``2 d``. Without
    ``value_projection`` the values are ``norm_1(v)`` itself (``W_V W_O = I``, the paper's
    "abuse of notation"), which needs ``heads * d_head == d``; without ``mlp``, ``psi = 0``.
    """
    vocab = check_int(vocab, "vocab", min=1)
    d = check_int(d, "d", min=1)
    count = check_int(layers, "layers", min=1)
    heads = check_int(heads, "heads", min=1)
    d_head = check_int(d // heads if d_head is None else d_head, "d_head", min=1)
    d_ff = check_int(2 * d if d_ff is None else d_ff, "d_ff", min=1)
    seed = check_int(seed, "seed", min=0)
    check_elements(vocab * d + count * (4 * heads * d * d_head + 2 * d * d_ff),
                   f"a transformer with vocab={vocab} d={d} layers={count} heads={heads}")
    if not value_projection and heads * d_head != d:
        raise InvalidArgument(f"value_projection=False needs heads * d_head == d but got "
                              f"{heads} * {d_head} != {d}")
    rng = np.random.default_rng(seed)
    embedding = rng.standard_normal((vocab, d))
    built = []
    for _ in range(count):
        w_q = rng.standard_normal((heads, d, d_head)) / math.sqrt(d)
        w_k = rng.standard_normal((heads, d, d_head)) / math.sqrt(d)
        if value_projection:
            w_v = rng.standard_normal((heads, d, d_head)) / math.sqrt(d)
            w_o = rng.standard_normal((heads * d_head, d)) / math.sqrt(heads * d_head)
        else:
            eye = np.eye(d)
            w_v = np.stack([eye[:, h * d_head:(h + 1) * d_head] for h in range(heads)])
            w_o = eye
        extra = {}
        if mlp:
            extra = {"w_1": rng.standard_normal((d, d_ff)) * math.sqrt(2 / d),
                     "b_1": np.zeros(d_ff),
                     "w_2": rng.standard_normal((d_ff, d)) / math.sqrt(d_ff),
                     "b_2": np.zeros(d)}
        built.append(Layer(w_q, w_k, w_v, w_o, **extra))
    return Transformer(embedding, tuple(built), pe=pe, norm=norm)


def forward(model: Transformer, inputs, fmt: Format | str = "fp64", policy: Policy | str = "hw",
            *, attention=None, trace: bool = False) -> Forward:
    """Run ``model`` on one sequence and return every position's final state and output.

    ``inputs`` are token ids ``(n,)`` or input states ``v^(0)`` ``(n, d)`` (NumPy or CuPy).
    Causality makes row ``i`` the final state of the prefix ``inputs[:i + 1]``. ``attention``, a
    sequence of one ``(heads, n, n)`` array per layer, replaces the computed attention weights
    (Theorem 5.1's assumption that attention does not depend on the input). With ``trace``, each
    layer's dict holds its input ``v``, its midpoint ``z``, the ``scores`` and the ``weights``.
    """
    fmt, policy = get_format(fmt), get_policy(policy)
    ops = LayerOps(model, fmt, policy, array_namespace(inputs))
    v = _check_inputs(inputs, model, ops)
    n = v.shape[0]
    positions = ops.xp.arange(n)
    if attention is not None:
        attention = list(attention)
        if len(attention) != len(model.layers):
            raise InvalidArgument(f"attention has {len(attention)} matrices; expected one per "
                                  "layer "
                                  f"({len(model.layers)})")
    records = []
    for index, layer in enumerate(model.layers):
        q, k, u = ops.heads(layer, v, positions)
        scores = ops.scores(q, k, positions, positions)
        if attention is None:
            weights = ops.softmax(scores, positions[None, :] <= positions[:, None])
        else:
            weights = _check_attention(attention[index], (model.heads, n, n), index, ops)
        mix = ops.out(ops.policy.matmul(weights, u, fmt))
        z = ops.residual(v, ops.merge(layer, mix))
        if trace:
            records.append({"v": v, "z": z, "scores": scores, "weights": weights})
        v = ops.mlp_block(layer, z)
    return Forward(policy.output(v, fmt), policy.output(ops.final_norm(v), fmt), tuple(records))


def _check_inputs(inputs, model: Transformer, ops: LayerOps):
    xp = ops.xp
    inputs = xp.asarray(inputs)
    if inputs.dtype.kind in "iu":
        return ops.embed(check_tokens(inputs, model, "inputs"))
    if inputs.ndim != 2 or inputs.shape[1] != model.d or inputs.shape[0] == 0:
        raise InvalidArgument(f"inputs have shape {tuple(inputs.shape)}; expected token ids (n,) "
                              "or "
                              f"states (n, {model.d}) with n >= 1")
    check_finite(inputs, "inputs")
    return ops.policy.load(inputs, ops.fmt)


def _check_attention(weights, shape: tuple, index: int, ops: LayerOps):
    xp = ops.xp
    weights = xp.asarray(weights, dtype=np.float64)
    if weights.ndim == 2:
        weights = weights[None]
    if weights.shape != shape:
        raise InvalidArgument(f"attention[{index}] has shape {tuple(weights.shape)}; expected "
                              f"{shape}")
    for head in range(shape[0]):
        check_row_stochastic(weights[head], f"attention[{index}][{head}]", atol=1e-9)
    if bool(xp.any(xp.triu(weights, 1) != 0)):
        raise InvalidArgument(f"attention[{index}] is not causal: it has weight above the diagonal")
    return ops.policy.load(weights, ops.fmt)


def check_tokens(tokens, model: Transformer, name: str, *, allow_empty: bool = False):
    xp = array_namespace(tokens)
    tokens = xp.asarray(tokens)
    if tokens.ndim != 1:
        raise InvalidArgument(f"{name} has shape {tuple(tokens.shape)}; expected one sequence of "
                              "ids")
    if tokens.shape[0] == 0 and not allow_empty:
        raise InvalidArgument(f"{name} are empty; pass at least one token id")
    if tokens.dtype.kind not in "iu":
        raise InvalidType(f"expected integer token ids but got {name} of dtype {tokens.dtype}")
    if tokens.shape[0] and (int(tokens.min()) < 0 or int(tokens.max()) >= model.vocab):
        raise InvalidArgument(f"{name} hold ids outside 0..{model.vocab - 1}; the model's "
                              "vocabulary "
                              f"has {model.vocab} tokens")
    return tokens


def _check_layer(layer: Layer, d: int, index: int) -> None:
    shapes = {name: np.shape(getattr(layer, name)) for name in ("w_q", "w_k", "w_v")}
    first = shapes["w_q"]
    if len(first) != 3 or first[1] != d:
        raise InvalidArgument(f"layers[{index}].w_q has shape {first}; expected (heads, {d}, "
                              "d_head)")
    for name, shape in shapes.items():
        if shape != first:
            raise InvalidArgument(f"layers[{index}].{name} has shape {shape}; expected {first}")
    heads, _, d_head = first
    expected = {"w_o": (heads * d_head, d), "gain_1": (d,), "bias_1": (d,), "gain_2": (d,),
                "bias_2": (d,)}
    if layer.has_mlp:
        d_ff = np.shape(layer.w_1)[-1]
        expected.update({"w_1": (d, d_ff), "b_1": (d_ff,), "w_2": (d_ff, d), "b_2": (d,)})
    elif any(getattr(layer, name) is not None for name in ("b_1", "w_2", "b_2")):
        raise InvalidArgument(f"layers[{index}] has MLP parts but w_1=None; give all of w_1, b_1, "
                              f"w_2, b_2 or none")
    for name, shape in expected.items():
        value = getattr(layer, name)
        if value is not None and np.shape(value) != shape:
            raise InvalidArgument(f"layers[{index}].{name} has shape {np.shape(value)}; "
                                  f"expected {shape}")
    for name in ("w_q", "w_k", "w_v", "w_o", "w_1", "b_1", "w_2", "b_2"):
        value = getattr(layer, name)
        if value is not None:
            check_finite(value, f"layers[{index}].{name}")


def _as_float64(value) -> np.ndarray:
    if type(value).__module__.startswith("cupy"):
        raise InvalidType("pass model weights as NumPy arrays; the forward moves them to the "
                          "tokens' backend")
    return np.asarray(value, dtype=np.float64)

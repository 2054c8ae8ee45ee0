"""Rank deficit: Masarczyk, Ostaszewski, Cheng, Trzcinski, Lucchi, Pascanu, "Unpacking Softmax:
How Temperature Drives Representation Collapse, Compression and Generalization" (arXiv:2506.01562,
2025; the ICLR 2026 resubmission says "Logits Norm" for "Temperature").

The claim: softmax networks trained with cross-entropy find logits and penultimate features of
rank far below the number of classes ``C``, and the softmax temperature ``T`` (or anything that
sets the logits norm) controls how far: the higher ``T``, the lower the rank. The paper's full
text could not be read; what is checked here is what its reviewers report (``[R]``) and our
reconstructions of its propositions (``[recon]``), marked as such in the derivation
(:mod:`proofs.rank_deficit`):

- Prop. 3.1 [recon]: ``sum_{k>=2} sigma_k(S)^2 <= (1/(2C)) sum_{j,k} ||s_j - s_k||^2`` for a
  softmaxed matrix ``S`` with columns ``s_j``, with equality when ``1/sqrt(C)`` is a top right
  singular vector; checked on every trained logits matrix and on the circle (where it is tight).
- Prop. 3.2 [recon]: rank-2 logits fit any labels: class ``c`` at angle ``2 pi c / C``, logits
  ``alpha cos(theta_c - theta_y)``, margin ``alpha (1 - cos(2 pi / C))`` and cross-entropy at most
  ``log(1 + (C - 1) exp(-alpha (1 - cos(2 pi / C))))``.
- The trend [R]: the effective rank of the logits and of the penultimate features falls as ``T``
  rises, at 100% training accuracy; its verdict is the mean over seeds of the fall from the
  lowest to the highest temperature (> 0), with the count of seeds that fall as evidence.
- The uni-modal curve [R]: the numerical rank of ``softmax(alpha Z)`` for a low-rank ``Z`` rises,
  then falls to the number of distinct argmax classes as ``alpha`` grows.

Rank definitions (stated because codes differ, notes Sec. 7): the numerical rank counts the
singular values of the column-centred matrix above ``threshold * sigma_1`` (1e-3 unless said),
not eigenvalues of a covariance; the effective rank is Roy & Vetterli's ``exp(H(sigma /
sum sigma))``. Both never count singular values at or below the format's rounding-noise floor
(:func:`numerics.rank_deficit.noise_floor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numerics import FORMAT_NAMES, get_format, get_policy, to_numpy
from numerics._validate import (
    as_real_array,
    check_choice,
    check_int,
    check_nonempty,
    check_real,
)
from numerics.datasets import DATASETS, load_dataset
from numerics.errors import InvalidArgument, InvalidType
from numerics.kernels import softmax
from numerics.models.mlp import cross_entropy, mlp_forward, random_mlp
from numerics.rank_deficit import (
    TRAIN_OPTIMISERS,
    effective_rank,
    noise_floor,
    numerical_rank,
    optimiser_for,
    pairwise_column_distance,
    rank_curve,
    rank_summary,
    softmax_jacobian,
    tail_energy,
)
from numerics.sweep import Cell
from numerics.train.loop import fit_classifier
from proofs import rank_deficit as proof
from proofs.rank_deficit import PAPER
from theorems._theorem import Statement, Theorem, figure_report
from theorems._witness import Witness
from theorems.figures import Key, Panel, Series, check_width, write_figure
from theorems.verdicts import judge

__all__ = ["THEOREM", "CircleWitness", "TemperatureSweep", "TrainResult", "circle_logits",
           "circle_loss", "circle_loss_bound", "effective_rank", "noise_floor", "numerical_rank",
           "rank_vs_temperature", "softmax_jacobian", "softmax_rank_curve", "train"]


def __dir__() -> list[str]:  # tab completion lists the public API, not the helpers
    return sorted(__all__)


#: The main grid's temperatures, and the quick grid's.
TEMPERATURES, QUICK_TEMPERATURES = (1.0, 3.0, 10.0, 30.0, 100.0), (1.0, 100.0)
#: The network: hidden layers of this width, ReLU, He initialisation.
LAYERS, WIDTH = 4, 128
#: Optimiser steps of a main-grid run, of a quick-grid run (every run of the quick grid fits its
#: training set by then and the ranks' fall over temperature is as clear), and of a precision run.
STEPS, QUICK_STEPS, PRECISION_STEPS = 500, 250, 300
#: The precision sub-grid trains on the first this many training images (stratified order), so
#: that its ``strict`` cells (every operation rounded, sums sequential) finish in minutes.
PRECISION_SAMPLES = 256
#: The circle's margin ``alpha (1 - cos(2 pi/C))`` in the sweep; and the curve's matrix.
CIRCLE_MARGIN, CURVE_SAMPLES, CURVE_CLASSES = 4.0, 1000, 10
CURVE_SCALES = tuple(float(a) for a in np.geomspace(1e-3, 1e4, 36))
_U64 = 2.0**-53


# --- REPL functions ------------------------------------------------------------------------------

def circle_logits(labels, classes: int, alpha: float) -> np.ndarray:
    """Prop. 3.2's rank-2 logits (float64, ``N x C``): ``z_ic = alpha cos(theta_c - theta_y_i)``
    with class ``c`` at ``theta_c = 2 pi c / C``, so ``Z = alpha H W^T`` with ``h_i = (cos, sin)
    (theta_{y_i})`` and ``w_c = (cos, sin)(theta_c)``; the angle difference is reduced exactly
    (``(c - y) mod C``) before it is scaled."""
    classes = check_int(classes, "classes", min=2, max=2**20)
    alpha = check_real(alpha, "alpha", min=0.0, strict_min=True)
    y = to_numpy(as_real_array(labels, "labels"), np.float64)
    if y.ndim != 1 or y.size == 0 or np.any(y != np.floor(y)) or np.any((y < 0) | (y >= classes)):
        raise InvalidArgument(f"labels must be a non-empty 1-d array of classes 0..{classes - 1}")
    if y.size * classes > 2**26:  # a few float64 copies of the logits are made on the way
        raise InvalidArgument(f"{y.size} labels x {classes} classes is above 2^26 logits")
    offset = (np.arange(classes)[None, :] - y.astype(np.int64)[:, None]) % classes
    return alpha * np.cos(float(PAPER["p32.angle"]) * offset / classes)


def circle_loss(classes: int, alpha: float) -> float:
    """The exact cross-entropy of every sample of :func:`circle_logits` (the same for every
    label): ``log(1 + sum_{k=1}^{C-1} exp(-alpha (1 - cos(2 pi k / C))))``, with ``1 - cos x =
    2 sin^2(x/2)`` so that nothing cancels."""
    classes = check_int(classes, "classes", min=2, max=2**20)
    alpha = check_real(alpha, "alpha", min=0.0, strict_min=True)
    k = np.arange(1, classes)
    angle = float(PAPER["p32.angle"])
    if angle == 2 * math.pi:  # the classes close the circle: sin(pi k/C) = sin(pi (C - k)/C),
        k = np.minimum(k, classes - k)  # and the small angle keeps every digit
    half_angle = angle * k / (2 * classes)
    return float(np.log1p(np.sum(np.exp(-2.0 * alpha * np.sin(half_angle) ** 2))))


def circle_loss_bound(classes: int, alpha: float) -> float:
    """Prop. 3.2's bound ``log(1 + (C - 1) exp(-alpha (1 - cos(2 pi / C))))`` (the paper's
    quantities by reference; ``1 - cos`` as ``2 sin^2`` where the constant is the paper's 1)."""
    classes = check_int(classes, "classes", min=2, max=2**20)
    alpha = check_real(alpha, "alpha", min=0.0, strict_min=True)
    angle = float(PAPER["p32.angle"]) / classes
    one = float(PAPER["p32.margin_one"])
    margin = 2.0 * math.sin(angle / 2) ** 2 + (one - 1.0)
    return float(np.log1p((classes - float(PAPER["p32.offset"])) * math.exp(-alpha * margin)))


def softmax_rank_curve(Z, scales, threshold: float = 1e-3, *, fmt: str = "fp64",
                       policy: str = "hw") -> dict:
    """The numerical rank (at ``threshold``) and effective rank of ``softmax(alpha Z)`` for every
    ``alpha`` in ``scales``, in one batched pass, with where the numerical rank peaks and the
    number of distinct argmax classes it ends at: ``{"scales", "numerical", "effective",
    "floor", "peak_scale", "peak", "argmax_classes"}``."""
    scales = to_numpy(as_real_array(scales, "scales"), np.float64).reshape(-1)
    if scales.size == 0 or np.any(~np.isfinite(scales)) or np.any(scales <= 0):
        raise InvalidArgument("scales must be a non-empty array of positive finite numbers")
    curve = rank_curve(Z, scales, threshold, fmt, policy)
    counted = np.where(np.isnan(curve["numerical"]), -1, curve["numerical"])
    top = int(np.argmax(counted))
    z = to_numpy(as_real_array(Z, "Z"), np.float64)
    return {**curve, "peak_scale": float(scales[top]), "peak": float(curve["numerical"][top]),
            "argmax_classes": int(np.unique(np.argmax(z, axis=-1)).size)}


@dataclass(frozen=True, eq=False)
class TrainResult:
    """One training run: accuracies, the logits and every hidden layer's features on the
    training set (float64 copies of the stored values), the logits norm, the ranks over training
    (``history``: one dict every ``record_every`` steps) and how the run ended."""

    dataset: str
    temperature: float
    optimizer: str
    fmt: str
    policy: str
    seed: int
    train_accuracy: float
    test_accuracy: float
    logits: np.ndarray
    features: tuple
    history: tuple
    ranks: dict
    diverged_at: int | None
    frozen_share: float
    steps: int = 0
    model: object = None

    @property
    def logits_norm(self) -> float:
        """Mean Euclidean norm of a training sample's logits."""
        return self.ranks["logits_norm"]

    def __repr__(self) -> str:
        r = self.ranks
        end = f"diverged at step {self.diverged_at}" if self.diverged_at is not None else \
            f"{self.steps} steps"
        return (f"<TrainResult {self.dataset} T={self.temperature:g} {self.optimizer} "
                f"{self.fmt}/{self.policy} seed {self.seed}: train {self.train_accuracy:.1%}, "
                f"test {self.test_accuracy:.1%}, logits norm {r['logits_norm']:.3g}, effective "
                f"rank logits {r['erank_logits']:.3f} / penultimate {r['erank_penultimate']:.3f}"
                f", numerical rank (1e-3) {r['nrank_logits']}; {end}>")


def train(dataset: str = "digits", temperature: float = 1.0, *, layers: int = LAYERS,
          width: int = WIDTH, optimizer: str = "adam", steps: int = STEPS,
          lr: float | None = None, fmt: str = "fp32", policy: str = "hw", seed: int = 0,
          samples: int | None = None, record_every: int = 50,
          loss_scale: float = 1.0) -> TrainResult:
    """Train a ReLU MLP (``layers`` hidden layers of ``width``) with full-batch cross-entropy at
    temperature ``T`` on ``dataset`` (``digits`` or ``mixture``, :mod:`numerics.datasets`), in
    ``fmt`` under ``policy`` (``hw``: storage in the format, fp32 master weights and
    accumulation; ``strict``: everything in the format), and measure its ranks.

    ``optimizer``: ``adam`` (lr 1e-3) or ``gd`` (heavy ball, momentum 0.9, lr ``0.01 T``: the
    ``T``-fold rate undoes the ``1/T`` of the gradient). Ranks are those of the stored outputs,
    measured in float64 with the storage format's noise floor. ``samples`` trains on the first
    that many training samples (all by default); ``loss_scale`` multiplies the loss before the
    backward pass and divides the gradients after it (fp16). A run is deterministic, so the last
    few are kept and a repeated call (the sweep's cell, then its figure) returns the same one."""
    fmt, policy = get_format(fmt).name, get_policy(policy).name
    key = (dataset, temperature, layers, width, optimizer, steps, lr, fmt, policy, seed, samples,
           record_every, loss_scale)
    # the cache key carries the types too: True == 1, but True is not a temperature
    typed = tuple((type(v).__name__, v) for v in key)
    try:
        hash(typed)
    except TypeError:
        return _train(*key)
    if typed not in _RUNS:
        if len(_RUNS) >= 32:
            _RUNS.pop(next(iter(_RUNS)))
        _RUNS[typed] = _train(*key)
    return _RUNS[typed]


_RUNS: dict[tuple, TrainResult] = {}


def _train(dataset, temperature, layers, width, optimizer, steps, lr, fmt, policy, seed, samples,
           record_every, loss_scale) -> TrainResult:
    check_choice(dataset, DATASETS, "dataset")
    temperature = check_real(temperature, "temperature", min=0.0, strict_min=True)
    layers = check_int(layers, "layers", min=1, max=64)
    width = check_int(width, "width", min=1, max=4096)
    seed = check_int(seed, "seed", min=0)
    fmt, policy = get_format(fmt).name, get_policy(policy).name
    data = load_dataset(dataset, seed=seed)
    count = len(data.y_train) if samples is None else check_int(samples, "samples", min=2,
                                                                max=len(data.y_train))
    X, y = _first(data.X_train, data.y_train, count)
    model = random_mlp([data.dim, *[width] * layers, data.classes], seed=seed)
    history_ranks = []

    def record(step, model_now, forward):
        # the ranks of the stored outputs, measured in float64 (the instrument is not the
        # network: its floor is the storage format's, whatever the training policy)
        ranks = rank_summary(forward.logits, forward.features[-1], fmt, "hw", temperature)
        history_ranks.append(ranks)
        return {key: ranks[key] for key in ("erank_logits", "erank_penultimate", "nrank_logits",
                                            "logits_norm")}

    with np.errstate(all="ignore"):  # a diverging run is recorded, not warned about
        fit = fit_classifier(model, X, y, optimiser_for(optimizer, temperature, lr),
                             steps=check_int(steps, "steps", min=1, max=100_000),
                             temperature=temperature, fmt=fmt, policy=policy,
                             loss_scale=loss_scale,
                             record_every=check_int(record_every, "record_every", min=1),
                             record=record)
        final = mlp_forward(fit.model, X, fmt, policy)
        test = mlp_forward(fit.model, data.X_test, fmt, policy)
    logits = to_numpy(final.logits, np.float64)
    features = tuple(to_numpy(h, np.float64) for h in final.features)
    for array in (logits, *features):  # shared by repeated calls: read-only
        array.flags.writeable = False
    test_z = to_numpy(test.logits, np.float64)
    return TrainResult(dataset, temperature, optimizer, fmt, policy, seed,
                       _accuracy(logits, y), _accuracy(test_z, data.y_test), logits, features,
                       fit.history, history_ranks[-1], fit.diverged_at, fit.frozen_share,
                       fit.steps, fit.model)


@dataclass(frozen=True)
class TemperatureSweep:
    """``rank_vs_temperature``'s table: one :class:`TrainResult` summary per temperature and
    seed, and the mean fall of the effective ranks from the lowest to the highest ``T``."""

    temperatures: tuple
    seeds: tuple
    runs: tuple  # (temperature, seed, summary dict)

    def values(self, key: str) -> np.ndarray:
        """``key`` per temperature (rows) and seed (columns)."""
        table = {(t, s): r[key] for t, s, r in self.runs}
        return np.array([[table[(t, s)] for s in self.seeds] for t in self.temperatures])

    def fall(self, key: str = "erank_logits") -> float:
        """Mean over seeds of ``key`` at the lowest temperature minus at the highest."""
        v = self.values(key)
        return float(np.mean(v[0] - v[-1]))

    def __str__(self) -> str:
        keys = ("train_accuracy", "logits_norm", "erank_logits", "erank_penultimate",
                "nrank_logits", "nrank_logits_1e-2")
        lines = [f"{'T':>7} " + " ".join(f"{k:>18}" for k in keys)]
        for i, t in enumerate(self.temperatures):
            cells = []
            for k in keys:
                v = self.values(k)[i]
                cells.append(f"{np.mean(v):>10.4g} +- {np.std(v):<5.2g}")
            lines.append(f"{t:>7g} " + " ".join(cells))
        lines.append(f"mean fall of the effective rank from T={self.temperatures[0]:g} to "
                     f"T={self.temperatures[-1]:g} over {len(self.seeds)} seeds: logits "
                     f"{self.fall():.3f}, penultimate {self.fall('erank_penultimate'):.3f}")
        return "\n".join(lines)


def rank_vs_temperature(temperatures=TEMPERATURES, *, seeds=(0, 1, 2), **kwargs
                        ) -> TemperatureSweep:
    """:func:`train` at every temperature (ascending) and seed; keyword arguments go to it."""
    for value, name in ((temperatures, "temperatures"), (seeds, "seeds")):
        if isinstance(value, str) or not hasattr(value, "__iter__"):
            raise InvalidType(f"{name}={value!r} must be a sequence, e.g. (1, 10, 100)")
    temperatures = tuple(sorted(check_real(t, "temperature", min=0.0, strict_min=True)
                                for t in check_nonempty(temperatures, "temperatures")))
    seeds = tuple(check_int(s, "seed", min=0) for s in check_nonempty(seeds, "seeds"))
    runs = tuple((t, s, _summary(train(temperature=t, seed=s, **kwargs)))
                 for t in temperatures for s in seeds)
    return TemperatureSweep(temperatures, seeds, runs)


@dataclass(frozen=True, repr=False)
class CircleWitness(Witness):
    """Prop. 3.2's circle as a witness: logits of rank 2 that fit every one of ``classes``
    labels (one sample per class), the loss they reach and its bound; with a claimed lower bound
    on the rank of a zero-error solution, whether they refute it."""

    classes: int
    alpha: float
    logits: np.ndarray
    rank: int
    train_accuracy: float
    loss: float
    loss_bound: float
    claimed_rank: int | None = None
    refutes: bool | None = None

    def headline(self) -> str:
        text = (f"Prop. 3.2's circle: logits of rank {self.rank} reach training accuracy "
                f"{self.train_accuracy:.0%} on {self.classes} classes (alpha = {self.alpha:.4g}),"
                f" loss {self.loss:.3g} <= bound {self.loss_bound:.3g}")
        if self.refutes is not None:
            text += (f"; {'refutes' if self.refutes else 'does not refute'} a claimed rank "
                     f">= {self.claimed_rank}")
        return text


# --- the theorem ---------------------------------------------------------------------------------

class RankDeficit(Theorem):
    """Softmax networks trained with cross-entropy find low-rank solutions; temperature sets how
    low."""

    name = "rank-deficit"
    title = "low-rank logits and features under softmax; temperature controls the rank"
    source = "Masarczyk et al., Unpacking Softmax, 2025 (reconstructed from its reviews)"
    statement = Statement(
        hypotheses=("S = softmax(Z/T) row-wise, Z in R^{N x C}", "C >= 2 classes",
                    "an MLP trained to 100% training accuracy with cross-entropy at T"),
        conclusion="sum_{k>=2} sigma_k(S)^2 <= (1/(2C)) sum_{j,k} ||s_j - s_k||^2 (Prop. 3.1, "
                   "reconstructed); rank-2 logits fit any labels with CE <= log(1 + (C-1) "
                   "exp(-alpha (1 - cos(2 pi/C)))) (Prop. 3.2, reconstructed); the effective "
                   "rank of the trained logits and features falls as T rises (reported)",
        latex=r"$\sum_{k\ge2}\sigma_k(S)^2 \le \frac{1}{2C}\sum_{j,k}\|s_j-s_k\|^2,\quad "
              r"\mathrm{CE} \le \log\!\bigl(1+(C-1)e^{-\alpha(1-\cos(2\pi/C))}\bigr)$",
    )
    max_size = 2**13  # the circle's classes: C x C logits
    figure_reads_report = True  # the training runs' ranks
    quantities = PAPER
    audit_exempt = {
        "logits erank falls 1% tighter": "the trend's bound is 0 (a fall), which no fraction "
                                         "tightens",
    }
    group = None
    prepare = None

    def derive(self):
        """Return the checked derivation (:func:`proofs.rank_deficit.derivation`)."""
        return proof.derivation()

    def axes(self, quick: bool) -> dict[str, list]:
        """Sizes are the circle's class counts: ``3, 10, 100`` (quick) or ``3, 10, 100, 1000``
        (``--sizes`` sets them); every format and
        policy; seeds 0 (quick) or 0-2; temperatures {1, 100} (quick) or {1, 3, 10, 30, 100};
        digits and adam for :data:`QUICK_STEPS` steps (quick), or both data sets and both
        optimisers for :data:`STEPS`; ``train=False`` leaves out the training cells."""
        return {
            "sizes": [3, 10, 100] if quick else [3, 10, 100, 1000],
            "formats": list(FORMAT_NAMES),
            "policies": ["hw", "strict"],
            "seeds": [0] if quick else [0, 1, 2],
            "temperatures": [QUICK_TEMPERATURES if quick else TEMPERATURES],
            "datasets": [("digits",) if quick else DATASETS],
            "optimizers": [("adam",) if quick else TRAIN_OPTIMISERS],
            "precision": [not quick],
            "train": [True],
            "quick": [quick],
        }

    def audit_grid(self) -> dict:
        """The audit runs the circle (3 and 10 classes, where Prop. 3.1 is an equality and Prop.
        3.2's bound is attained at C = 3) and the curve cells in fp64 under ``hw``: the training
        cells' rows depend on no paper number but Prop. 3.1's, which the circle pins down."""
        return {"quick": True, "workers": 1, "formats": ["fp64"], "policies": ["hw"],
                "sizes": [3, 10], "train": False}

    def cells(self, axes: dict[str, list]) -> list[Cell]:
        """Circle cells per class count, format and policy; curve cells per format, policy and
        seed; a training cell per data set and optimiser in fp32/hw with every seed and
        temperature (the trend is a statistic over seeds); and, in the full grid, the precision
        sub-grid: digits, adam, seed 0, the lowest and highest temperature, every other format
        and policy, on :data:`PRECISION_SAMPLES` images."""
        cells = []
        quick = axes["quick"][0]
        temperatures = sorted(axes["temperatures"][0])
        for backend in axes["backend"]:
            for fmt in axes["format"]:
                for policy in axes["policy"]:
                    common = {"format": fmt, "policy": policy, "backend": backend}
                    cells += [Cell.of(experiment="circle", n=n, seed=0, **common)
                              for n in axes["n"]]
                    cells += [Cell.of(experiment="curve", n=CURVE_SAMPLES, seed=s, **common)
                              for s in axes["seed"]]
            if not axes["train"][0]:
                continue
            if "fp32" in axes["format"] and "hw" in axes["policy"]:
                for dataset in axes["datasets"][0]:
                    for optimizer in axes["optimizers"][0]:
                        cells.append(Cell.of(
                            experiment="train", n=0, dataset=dataset, optimizer=optimizer,
                            seeds=list(axes["seed"]), temperatures=temperatures,
                            steps=QUICK_STEPS if quick else STEPS, format="fp32",
                            policy="hw", backend=backend))
            if axes["precision"][0]:
                for fmt in axes["format"]:
                    for policy in axes["policy"]:
                        cells.append(Cell.of(
                            experiment="train", n=PRECISION_SAMPLES, dataset="digits",
                            optimizer="adam", seeds=[axes["seed"][0]],
                            temperatures=[temperatures[0], temperatures[-1]],
                            steps=PRECISION_STEPS, format=fmt, policy=policy, backend=backend))
        return cells

    @staticmethod
    def evaluate(params: dict) -> list[dict]:
        """Evaluate one circle, curve or training cell."""
        return _EXPERIMENTS[params["experiment"]](params)

    def findings(self, report) -> str:
        """The trend per data set and optimiser, and what low precision changed."""
        lines = []
        for row in report.rows:
            if row["quantity"] == "logits erank falls":
                lines.append(
                    f"  {row['dataset']:<8} {row['optimizer']:<5} {row['format']:<9} "
                    f"{row['policy']:<7} T {row['t_low']:g} -> {row['t_high']:g}: effective rank "
                    f"of the logits {row['erank_low']:.3f} -> {row['erank_high']:.3f} "
                    f"(falls in {row['seeds_falling']} of {row['seeds']} seeds), penultimate "
                    f"{row['penultimate_low']:.3f} -> {row['penultimate_high']:.3f}; numerical "
                    f"rank (1e-3) {row['nrank_low']:g} -> {row['nrank_high']:g}; logits norm "
                    f"{row['norm_low']:.3g} -> {row['norm_high']:.3g}; every run at 100% train "
                    f"accuracy: {'yes' if row['all_fit'] else 'no'}"
                    + (f"; {row['verdict']} ({row['mechanism']})" if row["mechanism"] else ""))
        if lines:
            lines.insert(0, "rank against temperature (statistic: mean over seeds of the fall "
                            "from the lowest to the highest T):")
        ties = [r for r in report.rows if r["quantity"] == "circle accuracy"
                and r["verdict"] == "precision-effect"]
        if ties:
            lines.append("rank-2 circle logits that no longer separate their classes: "
                         + ", ".join(f"{r['format']}/{r['policy']} C={r['n']} ({r['mechanism']})"
                                     for r in ties))
        return "\n".join(lines)

    def figure(self, out_dir, *, quick: bool = True, width: str = "columnwidth",
               report=None):
        """Effective rank against temperature (logits and penultimate features, per data set,
        with the seeds' spread) and the rank of ``softmax(alpha Z)`` against ``alpha``;
        ``width``: ``columnwidth``, ``textwidth``, ``linewidth`` or a TeX length; the ranks
        come from ``report``'s fp32/hw training rows where it holds every run the figure
        needs, else the runs are trained here."""
        return _figure(Path(out_dir), quick=quick, width=check_width(width),
                       report=figure_report(self, report))

    def counterexample(self, *, classes: int = 10, claimed_rank: int | None = None,
                       alpha: float | None = None) -> CircleWitness:
        """A network output of rank 2 with 100% training accuracy on ``classes`` classes (one
        sample per class, Prop. 3.2's circle), the loss it reaches and its bound; with
        ``claimed_rank`` (a claimed lower bound on the rank of any zero-error solution), whether
        this witness refutes it."""
        classes = check_int(classes, "classes", min=3, max=4096)
        if alpha is None:
            alpha = CIRCLE_MARGIN / (2 * math.sin(math.pi / classes) ** 2)
        labels = np.arange(classes)
        Z = circle_logits(labels, classes, alpha)
        rank = numerical_rank(Z, 1e-9, center=False)
        accuracy = _accuracy(Z, labels)
        refutes = None
        if claimed_rank is not None:
            claimed_rank = check_int(claimed_rank, "claimed_rank", min=0)
            refutes = bool(rank < claimed_rank and accuracy == 1.0)
        return CircleWitness(classes, float(alpha), Z, rank, accuracy,
                             circle_loss(classes, alpha), circle_loss_bound(classes, alpha),
                             claimed_rank, refutes)


THEOREM = RankDeficit()


# --- helpers -------------------------------------------------------------------------------------

def _first(X, y, count: int):
    """The first ``count`` samples in an order that cycles through the classes (stratified)."""
    order = np.lexsort((y, _rank_within_class(y)))  # by rank within the class, then class
    picked = np.sort(order[:count]) if count < len(y) else np.arange(len(y))
    return X[picked], y[picked]


def _rank_within_class(y) -> np.ndarray:
    out = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        where = np.flatnonzero(y == c)
        out[where] = np.arange(where.size)
    return out


def _accuracy(logits, labels) -> float:
    """The share of rows whose true class's logit is strictly above every other (a tie is
    wrong, whichever index ``argmax`` would return)."""
    z = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    rows = np.arange(z.shape[0])
    true = z[rows, labels]
    others = z.copy()
    others[rows, labels] = -np.inf
    return float(np.mean(true > others.max(axis=-1)))


def _summary(run: TrainResult) -> dict:
    return {"train_accuracy": run.train_accuracy, "test_accuracy": run.test_accuracy,
            "diverged_at": run.diverged_at, "frozen_share": run.frozen_share, **run.ranks}


def _base(params: dict) -> dict:
    return {"theorem": THEOREM.name, "experiment": params["experiment"], "n": params["n"],
            "format": params["format"], "policy": params["policy"],
            "seed": params.get("seed"), "backend": params["backend"]}


def _fp64_tolerance(bound: float, size: int, fmt) -> float:
    """The float64 evaluation error of a Prop. 3.1 row (an SVD and two sums of ``size`` squares,
    each within ``4 size 2^-53`` of its value), in ulps of ``fmt`` at the bound."""
    ulp = float(fmt.ulp(bound)) if bound > 0 else float(fmt.smallest_subnormal)
    return 8 * size * _U64 * max(abs(bound), 1.0) / ulp


def _prop31_row(base: dict, S: np.ndarray, fmt, label: str = "tail <= dissimilarity") -> dict:
    """Prop. 3.1 on one softmaxed matrix: the tail energy against the column dissimilarity
    (PAPER's 1/2 by reference), both in float64 from the stored matrix."""
    observed = float(tail_energy(S))
    bound = float(PAPER["p31.half"]) / S.shape[-1] * float(pairwise_column_distance(S))
    size = int(np.prod(S.shape))
    return {**base, **judge(quantity=label, observed=observed, exact=None, bound=bound,
                            relation="<=", format=fmt.name,
                            tolerance_ulps=_fp64_tolerance(bound, size, fmt))}


def _circle(params: dict) -> list[dict]:
    """Prop. 3.2's circle with one sample per class, stored in the format: does it still fit
    every label (a tie is a miss), is its in-format loss within the bound, and is Prop. 3.1 tight
    on its softmax?"""
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    classes = params["n"]
    alpha = CIRCLE_MARGIN / (2 * math.sin(math.pi / classes) ** 2)
    labels = np.arange(classes)
    exact_z = circle_logits(labels, classes, alpha)
    base = {**_base(params), "alpha": alpha}
    with np.errstate(over="ignore"):
        stored = np.asarray(policy.output(policy.load(exact_z, fmt), fmt), dtype=np.float64) \
            if np.all(np.abs(exact_z) <= fmt.max) else np.full_like(exact_z, np.inf)
    finite = bool(np.all(np.isfinite(stored)))
    neighbour_equal = bool(finite and np.any(stored[labels, labels]
                                             == stored[labels, (labels + 1) % classes]))
    accuracy = _accuracy(stored, labels) if finite else math.nan
    rows = [{**base, **judge(quantity="circle accuracy", observed=accuracy, exact=1.0, bound=1.0,
                             relation=">=", format=fmt.name,
                             evidence={"bitwise_equal": neighbour_equal})}]
    bound = circle_loss_bound(classes, alpha)
    if finite:
        loss = float(to_numpy(cross_entropy(stored, labels, fmt, policy), np.float64))
        stored_loss = _exact_ce(stored, labels)
        tolerance = _ce_tolerance(classes, bound, fmt, policy)
    else:
        loss, stored_loss, tolerance = math.nan, None, 0.0
    rows.append({**base, **judge(quantity="circle loss <= bound", observed=loss,
                                 exact=circle_loss(classes, alpha), bound=bound, relation="<=",
                                 format=fmt.name, tolerance_ulps=tolerance,
                                 evidence={"bitwise_equal": neighbour_equal,
                                           "stored_exact": stored_loss})})
    if finite:
        S = np.asarray(to_numpy(softmax(stored, fmt, policy), np.float64))
        rows.append(_prop31_row(base, S, fmt, "tail <= dissimilarity (circle)"))
    return rows


def _ce_tolerance(classes: int, bound: float, fmt, policy) -> float:
    """The rounding error of the in-format mean cross-entropy of the circle's ``C`` samples, in
    ulps of ``fmt`` at ``bound`` (about the loss): each sum ``sum_c exp(z_c - z_y)`` (``z_y``
    the maximum) is within ``(C + 2) u`` of its value relatively, so its log within ``(C + 3) u``
    absolutely; the mean of ``C`` losses near ``bound`` adds ``(C + 2) u bound``; ``u`` is the
    format's unit roundoff under ``strict`` and float32's (float64's for fp64) under ``hw``,
    which also rounds each loss and the mean once (2 ulps)."""
    if policy.accumulate == "format":
        u, rounding = fmt.unit_roundoff, 0.0
    else:
        u, rounding = (_U64 if fmt.name == "fp64" else 2.0**-24), 2.0
    return rounding + ((classes + 3) + (classes + 2) * bound) * u / float(fmt.ulp(bound))


def _exact_ce(z: np.ndarray, labels) -> float:
    """Mean ``log sum_c exp(z_c - z_y)`` of float64 logits, to float64 accuracy (``log1p`` of
    the other classes' terms, which are at most 1 when ``z_y`` is the row's maximum)."""
    rows = np.arange(z.shape[0])
    top = z.max(axis=-1, keepdims=True)
    terms = np.exp(z - top)
    total = terms.sum(axis=-1)
    return float(np.mean(np.log(total) + top[:, 0] - z[rows, labels]))


def _curve(params: dict) -> list[dict]:
    """The rank of ``softmax(alpha Z)`` for a random rank-2 ``Z`` (N = 1000, C = 10) over
    ``alpha``: it rises to a peak, then falls to the number of distinct argmax classes."""
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    rng = np.random.default_rng([params["seed"], 32])
    Z = rng.standard_normal((CURVE_SAMPLES, 2)) @ rng.standard_normal((2, CURVE_CLASSES))
    curve = softmax_rank_curve(Z, CURVE_SCALES, fmt=fmt.name, policy=policy.name)
    exact = softmax_rank_curve(Z, CURVE_SCALES)
    base = {**_base(params), "peak_scale": curve["peak_scale"], "largest_scale": CURVE_SCALES[-1],
            "argmax_classes": curve["argmax_classes"],
            "overflow_from": next((a for a, o in zip(CURVE_SCALES, curve["overflow"],
                                                     strict=True) if o), None)}
    end = float(curve["numerical"][-1])
    # the floor's evidence at the two scales the rows read (the peak and the end)
    peak_index = int(np.argmax(exact["numerical"]))
    hidden = [h for h in (curve["hidden"][peak_index], curve["hidden"][-1]) if np.isfinite(h)]
    evidence = {"floor_cut": int(max(hidden)) if hidden else 0,
                "floor": float(np.nanmax(curve["floor"])) if np.any(np.isfinite(curve["floor"]))
                else None}
    return [
        {**base, **judge(quantity="rank peak > end", observed=curve["peak"] - end,
                         exact=exact["peak"] - exact["numerical"][-1], bound=0, relation=">",
                         format=fmt.name, evidence=evidence)},
        {**base, **judge(quantity="end rank <= argmax classes", observed=end,
                         exact=exact["numerical"][-1], bound=curve["argmax_classes"],
                         relation="<=", format=fmt.name, evidence=evidence)},
    ]


def _train_cell(params: dict) -> list[dict]:
    """Train every (temperature, seed) of the cell; Prop. 3.1 on every trained logits matrix;
    the trend of the effective rank over temperature (mean over seeds)."""
    fmt = get_format(params["format"])
    temperatures, seeds = params["temperatures"], params["seeds"]
    samples = params["n"] or None
    runs = {}
    for t in temperatures:
        for s in seeds:
            runs[(t, s)] = train(params["dataset"], t, optimizer=params["optimizer"],
                                 steps=params["steps"], fmt=fmt.name, policy=params["policy"],
                                 seed=s, samples=samples)
    reference = None
    if (fmt.name, params["policy"]) != ("fp32", "hw"):
        reference = {(t, s): train(params["dataset"], t, optimizer=params["optimizer"],
                                   steps=params["steps"], seed=s, samples=samples)
                     for t in (temperatures[0], temperatures[-1]) for s in seeds}
    base = {**_base({**params, "seed": None}), "dataset": params["dataset"],
            "optimizer": params["optimizer"], "steps": params["steps"]}
    rows = []
    for (t, s), run in runs.items():
        facts = {**base, "seed": s, "temperature": t, **_summary(run)}
        if run.diverged_at is None and np.all(np.isfinite(run.logits)):
            S = np.asarray(to_numpy(softmax(run.logits, fmt, params["policy"], temperature=t),
                                    np.float64))
            rows.append(_prop31_row(facts, S, fmt))
    for key, label in (("erank_logits", "logits erank falls"),
                       ("erank_penultimate", "penultimate erank falls")):
        rows.append(_trend_row(base, runs, reference, temperatures, seeds, key, label, fmt))
    return rows


def _trend_row(base, runs, reference, temperatures, seeds, key, label, fmt) -> dict:
    low, high = temperatures[0], temperatures[-1]

    def fall(table):
        values = [table[(low, s)].ranks[key] - table[(high, s)].ranks[key] for s in seeds]
        return float(np.mean(values)) if all(np.isfinite(values)) else math.nan, values

    observed, falls = fall(runs)
    exact = fall(reference)[0] if reference is not None else None
    every = list(runs.values())
    diverged = [r for r in every if r.diverged_at is not None]
    evidence = {
        "seeds_falling": int(sum(f > 0 for f in falls)), "seeds": len(seeds),
        "all_fit": all(r.train_accuracy == 1.0 for r in every),
        "frozen_share": max(r.frozen_share for r in every),
        "floor_cut": max(r.ranks["floor_cut"] for r in every),
        "diverged": len(diverged),
    }
    mean = {name: float(np.mean([runs[(t, s)].ranks[field_] for s in seeds]))
            for name, t, field_ in (("erank_low", low, "erank_logits"),
                                    ("erank_high", high, "erank_logits"),
                                    ("penultimate_low", low, "erank_penultimate"),
                                    ("penultimate_high", high, "erank_penultimate"),
                                    ("nrank_low", low, "nrank_logits"),
                                    ("nrank_high", high, "nrank_logits"),
                                    ("norm_low", low, "logits_norm"),
                                    ("norm_high", high, "logits_norm"))}
    return {**base, "t_low": low, "t_high": high, **mean,
            **judge(quantity=label, observed=observed, exact=exact, bound=0.0, relation=">",
                    format=fmt.name, evidence=evidence)}


_EXPERIMENTS = {"circle": _circle, "curve": _curve, "train": _train_cell}


def _figure(out_dir: Path, *, quick: bool, width: str, report=None):
    return write_figure(out_dir, THEOREM.name, _figure_panels(quick, report), width=width)


def _ranks_in(report, dataset: str, temperatures, seeds, steps: int) -> dict | None:
    """``{(T, seed): (erank of the logits, erank of the features)}`` of the reference training
    runs (fp32/hw, Adam, ``steps`` steps, every sample) in ``report``'s rows, or ``None``
    where a run the figure needs is not among them."""
    found = {}
    for row in report.rows if report is not None else ():
        if (row["quantity"] == "tail <= dissimilarity" and row["experiment"] == "train"
                and (row["format"], row["policy"], row["n"]) == ("fp32", "hw", 0)
                and (row["dataset"], row["optimizer"], row["steps"]) == (dataset, "adam", steps)):
            found[(row["temperature"], row["seed"])] = (row["erank_logits"],
                                                        row["erank_penultimate"])
    wanted = [(t, s) for t in temperatures for s in seeds]
    return {key: found[key] for key in wanted} if all(key in found for key in wanted) else None


def _figure_panels(quick: bool, report=None) -> list[Panel]:
    if report is None and quick in _FIGURE_PANELS:  # another width reuses the data drawn
        return _FIGURE_PANELS[quick]
    temperatures = QUICK_TEMPERATURES if quick else TEMPERATURES
    seeds = (0,) if quick else (0, 1, 2)
    datasets = ("digits",) if quick else DATASETS
    steps = QUICK_STEPS if quick else STEPS
    key = (Key("mean over seeds", "line"), Key("min and max over seeds", "dotted"))
    panels = []
    for dataset in datasets:
        ranks = _ranks_in(report, dataset, temperatures, seeds, steps)
        if ranks is None:
            sweep = rank_vs_temperature(temperatures, seeds=seeds, dataset=dataset, steps=steps)
            ranks = {(t, s): (summary["erank_logits"], summary["erank_penultimate"])
                     for t, s, summary in sweep.runs}
        for colour, name in enumerate(("logits", "features")):
            values = np.array([[ranks[(t, s)][colour] for s in seeds] for t in temperatures])
            series = [Series(f"{dataset}, {name}, mean over seeds", temperatures,
                             tuple(values.mean(axis=1)), "line", colour)]
            if len(seeds) > 1:
                series += [Series(f"{dataset}, {name}, min over seeds", temperatures,
                                  tuple(values.min(axis=1)), "dotted", colour),
                           Series(f"{dataset}, {name}, max over seeds", temperatures,
                                  tuple(values.max(axis=1)), "dotted", colour)]
            # one y label per quantity: the two ranks differ too much to share a range
            panels.append(Panel(dataset, "temperature $T$", f"erank ({name})",
                                tuple(series), "log", "linear", legend=len(seeds) > 1,
                                key=key if len(seeds) > 1 else ()))
    rng = np.random.default_rng([0, 32])
    Z = rng.standard_normal((CURVE_SAMPLES, 2)) @ rng.standard_normal((2, CURVE_CLASSES))
    curve = softmax_rank_curve(Z, CURVE_SCALES)
    panels.append(Panel("$\\mathrm{softmax}(\\alpha Z)$",
                        "scale $\\alpha$; $\\mathrm{rank}\\, Z = 2$", "rank",
                        (Series("numerical rank (tol. $10^{-3}$)", CURVE_SCALES,
                                tuple(float(v) for v in curve["numerical"]), "line", 0),
                         Series("effective rank", CURVE_SCALES,
                                tuple(float(v) for v in curve["effective"]), "dashed", 1)),
                        "log", "linear"))
    if report is None:  # a figure from a report shows that report's numbers, kept with it
        _FIGURE_PANELS[quick] = panels
    return panels


_FIGURE_PANELS: dict[bool, list[Panel]] = {}

"""What a REPL or a notebook shows: Python scalars, short reprs, rich reprs, lazy submodules."""

from __future__ import annotations

import html
import importlib
import math
import subprocess
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

import theorems
from numerics.backend import to_python
from theorems.report import Report

STEMS = [name.replace("-", "_") for name in theorems.names()]


# --- scalars ------------------------------------------------------------------------------------

def test_scalar_calls_return_python_scalars():
    from theorems import iso_perplexity as iso
    from theorems import softmax_dispersion as sd

    a, gamma = 0.8, 0.4
    value = iso.log_perplexity(a, gamma)
    assert type(value) is float
    assert value == pytest.approx(-a * math.log(1 - gamma) - (1 - a) * math.log(gamma), rel=1e-15)
    assert type(iso.critical_accuracy(a, gamma, 0.1)) is float
    assert type(iso.free_lunch(a, gamma)) is bool and iso.free_lunch(a, gamma) is (a > 1 - gamma)
    assert [type(v) for v in iso.lowest_accepted_accuracy(a, gamma)] == [float, float]
    assert type(iso.corrected_bound(10, 0.1, 0.01)) is float
    low, high = sd.paper_bounds(8, 4.0)
    assert (type(low), type(high)) == (float, float)
    assert low == pytest.approx(math.exp(-4) / 8, rel=1e-14)
    assert type(sd.max_weight_bound(8, 4.0)) is float
    assert sd.max_weight_bound(8, 4.0) == pytest.approx(1 / (1 + 7 * math.exp(-4)), rel=1e-14)
    assert type(sd.min_weight_bound(8, 4.0)) is float
    assert type(sd.adaptive_beta(1.0)) is float
    assert type(sd.min_size_for_dispersion(0.9, 4.0)) is int


def test_arrays_stay_arrays_and_exact_inputs_stay_exact():
    from theorems import iso_perplexity as iso
    from theorems import softmax_dispersion as sd

    assert isinstance(sd.max_weight_bound(np.array([2, 8]), 4.0), np.ndarray)
    assert isinstance(iso.log_perplexity(np.array([0.6, 0.8]), 0.4), np.ndarray)
    assert isinstance(iso.critical_accuracy(sp.Rational(1, 2), sp.Rational(2, 5),
                                            sp.Rational(1, 10)), sp.Basic)
    assert isinstance(iso.log_perplexity(mpmath.mpf("0.8"), mpmath.mpf("0.4")), mpmath.mpf)


@pytest.mark.parametrize("value, expected", [
    (np.float64(1.5), 1.5), (np.True_, True), (np.int64(3), 3), (np.array(2.5), 2.5),
    (np.float32(0.5), 0.5),
])
def test_to_python_unwraps_numpy_scalars(value, expected):
    result = to_python(value)
    assert type(result) is type(expected) and result == expected


def test_to_python_leaves_arrays_and_other_values_alone():
    array = np.arange(3.0)
    assert to_python(array) is array
    assert to_python(sp.Integer(2)) == sp.Integer(2) and to_python(None) is None


# --- the package and its modules ----------------------------------------------------------------

def test_import_theorems_is_cheap_and_submodules_load_on_first_use():
    code = ("import sys, theorems\n"
            "heavy = [m for m in ('numpy', 'sympy', 'matplotlib', 'theorems.softmax_dispersion',"
            " 'theorems._theorem') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert 'softmax_dispersion' in dir(theorems) and 'verdicts' in dir(theorems)\n"
            "assert theorems.softmax_dispersion.paper_bounds\n"
            "assert theorems.Theorem.__name__ == 'Theorem' and theorems.Report.__name__ == "
            "'Report'\n"
            "assert 'theorems.softmax_dispersion' in sys.modules\n"
            "try:\n    theorems.no_such_module\nexcept AttributeError:\n    pass\n"
            "else:\n    raise SystemExit('no AttributeError')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("stem", STEMS)
def test_theorem_modules_list_their_public_api(stem):
    module = importlib.import_module(f"theorems.{stem}")
    assert "THEOREM" in module.__all__ and dir(module) == sorted(module.__all__)
    assert not {"plan", "run", "cells", "evaluate"} & set(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        assert name == "THEOREM" or (value.__doc__ or "").strip(), name
    theorem = module.THEOREM
    assert {"derive", "check", "counterexample", "statement"} <= set(dir(theorem))
    assert not {"plan", "run", "cells", "evaluate", "code_version"} & set(dir(theorem))
    assert callable(theorem.plan)  # hidden from completion, still there


# --- rich reprs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stem", STEMS)
def test_a_theorem_shows_its_name_title_source_and_statement(stem):
    theorem = importlib.import_module(f"theorems.{stem}").THEOREM
    shown = theorem._repr_html_()
    for text in (theorem.name, theorem.title, theorem.source, theorem.statement.latex,
                 *theorem.statement.hypotheses):
        assert html.escape(text) in shown
    assert theorem._repr_latex_() == theorem.statement.latex


def test_a_report_shows_its_summary_as_a_table():
    base = {"theorem": "t", "quantity": "q", "mechanism": ""}
    rows = [{**base, "format": f, "policy": p, "verdict": v}
            for f, p, v in [("bf16", "hw", "holds"), ("bf16", "hw", "violated"),
                            ("fp16", "strict", "holds")]]
    shown = Report("t", rows)._repr_html_()
    assert shown.count("<tr>") == 1 + 2  # the header and one row per (format, policy)
    assert "NOT OK" in shown and "violated" in shown
    assert "NOT OK" not in Report("t", rows[::2])._repr_html_()


WITNESSES = {
    "softmax-dispersion": {"sharpness": 0.9, "spread": 4.0},
    "iso-perplexity": {"a": 0.8, "gamma": 0.4},
    "rank-deficit": {"classes": 10, "claimed_rank": 9},
    "sae-amortisation": {"k": 1, "fmt": "bf16"},
    "representational-collapse": {"family": "repeated", "fmt": "fp8-e4m3", "n_max": 256,
                                  "d": 16},
}


@pytest.mark.parametrize("name", WITNESSES)
def test_counterexamples_print_short_and_keep_their_arrays(name):
    witness = theorems.get(name).counterexample(**WITNESSES[name])
    text, short = str(witness), repr(witness)
    assert len(text.splitlines()) <= 6 and len(text) < 700, text
    assert "\n" not in short and len(short) < 300
    assert "array(" not in text + short  # arrays by shape only
    assert html.escape(witness.headline()) in witness._repr_html_()
    assert dict(witness) == witness.as_dict() and witness.as_dict()
    for field, value in witness.as_dict().items():
        assert witness[field] is value is getattr(witness, field)
    with pytest.raises(KeyError):
        witness["no such field"]


def test_the_iso_perplexity_counterexample_says_log_perplexity():
    pair = theorems.get("iso-perplexity").counterexample(a=0.8, gamma=0.4)
    for text in (str(pair), repr(pair), pair._repr_html_()):
        assert "log-perplexity" in text
        assert "pplx" not in text and " perplexity" not in text.replace("log-perplexity", "")
    a, gamma = pair.accuracy[0], pair.gamma[0]
    assert pair.log_perplexity[0] == pytest.approx(
        -a * math.log(1 - gamma) - (1 - a) * math.log(gamma), rel=1e-12)


def test_result_objects_print_their_arrays_by_shape():
    from numerics.solvers import dictionary_learning, fista

    rng = np.random.default_rng(0)
    D = rng.standard_normal((6, 9))
    X = rng.standard_normal((40, 6))
    codes = fista(X, D, iterations=5)
    assert repr(codes) == (f"SparseCodes(codes=float32[40, 9], objective=float32[5, 40], "
                           f"lipschitz={codes.lipschitz:.6g}, form='{codes.form}', fmt='fp32', "
                           "policy='hw')")
    assert codes.codes.shape == (40, 9)  # the values stay attributes
    learned = dictionary_learning(X, 9, rounds=8, seed=0)
    assert repr(learned).startswith("LearnedDictionary(D=float64[6, 9], Z=float32[40, 9], ")
    assert "changes=<8 tuple items>" in repr(learned) and len(repr(learned)) < 250

"""How derivations print: conventional text, LaTeX that fits a page, and the legend of letters."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import sympy as sp

import theorems
from proofs import notation, typeset
from proofs.steps import eq, ge, le, lt
from theorems import cli

n = sp.Symbol("n", positive=True, integer=True)
d, y = sp.symbols("d y", real=True)
theta = sp.Symbol("theta", positive=True)
alpha = sp.Function("alpha")
e = sp.Function("e")


@pytest.mark.parametrize("claim, shown", [
    (eq(sp.Limit(n / ((n - 1) * sp.exp(-d) + 1), n, sp.oo), sp.exp(d)),
     "lim_{n→∞} n/((n - 1)·e^-d + 1) = e^d"),
    (le(alpha(n) ** 2, sp.exp((y - d) / theta)), "α(n)² ≤ e^((-d + y)/θ)"),
    (sp.And(le(d, e(n)), le(e(n), y)), "d ≤ e(n) ≤ y"),
    (sp.And(ge(alpha(n), d), le(alpha(n), y), lt(n, 3)), "n < 3 ∧ d ≤ α(n) ≤ y"),
    (eq(sp.Sum(alpha(n), (n, 1, 5)), sp.sqrt(2) * (1 - y)), "Σ_{n=1}^{5} α(n) = √2·(1 - y)"),
    (eq(sp.Abs(2 * y), sp.Derivative(alpha(y), y)), "2|y| = ∂/∂y α(y)"),
])
def test_claims_print_in_a_papers_notation(claim, shown):
    assert notation.text(claim) == shown


def test_latex_is_sympys_with_chains_and_names_as_one_word():
    claim = le(sp.exp(-d) / n, alpha(n))
    assert notation.latex(claim) == sp.latex(claim)
    assert notation.latex(sp.And(le(d, e(n)), le(e(n), y))) == (
        sp.latex(d) + r" \leq " + sp.latex(e(n)) + r" \leq " + sp.latex(y))
    assert notation.latex(sp.Symbol("Emax")) == r"\mathit{Emax}"
    assert notation.latex(sp.Symbol("alpha_top")) == r"\alpha_{\mathrm{top}}"


def test_a_long_sum_breaks_into_rows_that_fit_and_keep_every_term():
    terms = sp.symbols("x0:40", real=True)
    claim = le(sp.Add(*[t**2 / (t + 1) for t in terms]), sp.Symbol("B"))
    rows = typeset.latex_rows(claim, width=20)
    assert len(rows) > 3 and all(row.startswith("&") for row in rows)
    assert all(typeset.latex_width(row) <= 20 for row in rows)
    joined = " ".join(rows)
    assert all(sp.latex(t**2 / (t + 1)) in joined for t in terms)
    assert rows[-1].endswith(r"\leq B")


def test_the_width_estimate_grows_with_what_is_typeset():
    assert typeset.latex_width("x") < typeset.latex_width("x + y") < typeset.latex_width(
        r"x + y + \frac{a + b + c}{d}")
    assert typeset.latex_width(r"\frac{a + b + c}{d}") < typeset.latex_width("a + b + c + d")


def test_the_legend_groups_a_pattern_and_says_what_no_entry_covers():
    s00, s01, s23, z = sp.symbols("S00 S01 S23 z")
    legend = notation.legend([s00, z, s01, s23, n], {"S[0-9][0-9]": "entries of S", n: "size"})
    assert legend == [((s00, s01, s23), "entries of S"), ((z,), ""), ((n,), "size")]
    assert notation.letter_text((s00, s01, s23)) == "S00, S01, S23"


@pytest.mark.parametrize("note, typeset_note", [
    ("alpha_i's own term is >= e^{-d}", r"$\alpha_i$'s own term is $\ge$ $e^{-d}$"),
    ("g_ij: 50% & more", r"$g_{ij}$: 50\% \& more"),
    ("centre p1 - p1^2; h_B2_x stays text",
     r"centre p1 - $p1^2$; h\_\allowbreak{}B2\_\allowbreak{}x stays text"),
])
def test_notes_set_their_ascii_maths_as_maths(note, typeset_note):
    assert notation.latex_prose(note) == typeset_note


# --- every theorem ------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=theorems.names())
def derivation(request):
    return request.param, theorems.get(request.param).derive()


def test_every_letter_is_described_and_no_sympy_syntax_is_printed(derivation):
    name, d = derivation
    assert d.undescribed == []
    text = str(d)
    assert not re.search(r"\bEq\(|\bLimit\(|\bDerivative\(|\*\*|\bAbs\(|\bSum\(", text)
    words = " ".join(text.split())
    assert all(" ".join(r.step.note.split()) in words for r in d.steps if r.step.note)


@pytest.mark.tex
def test_derive_latex_compiles_in_an_article_without_overfull_boxes(derivation, capsys,
                                                                    tmp_path):
    if shutil.which("pdflatex") is None and not os.environ.get("CI"):
        pytest.skip("pdflatex is not installed")
    name, d = derivation
    assert cli.main(["derive", name, "--latex"]) == 0
    fragment = capsys.readouterr().out
    assert "\\texttt" not in fragment
    (tmp_path / "derivation.tex").write_text(fragment, encoding="utf-8")
    (tmp_path / "main.tex").write_text(
        "\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n"
        "\\input{derivation.tex}\n\\end{document}\n", encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    log = (tmp_path / "main.log").read_text(errors="replace")
    assert done.returncode == 0, done.stdout[-2000:]
    overfull = re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)
    assert overfull == [], f"{len(overfull)} overfull boxes, widest {max(overfull)} pt"

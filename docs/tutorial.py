"""A first session with ``theorems``, in the order a new user meets it.

Run it as a script (it takes well under a minute and writes into OUT, a new temporary directory
unless given):

    python docs/tutorial.py [OUT]

or open it as a notebook: the ``# %%`` lines are cells for Jupyter (with jupytext), VS Code and
Spyder, and each cell's last lines show what a REPL prints.
"""

# %%
# 1. What is there. The registry knows every theorem by name; importing the package is cheap
# (no SymPy, no theorem module), and each theorem's module is an attribute of the package,
# loaded on first use.
import sys
import tempfile
from pathlib import Path

import theorems

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="tutorial-"))
out.mkdir(parents=True, exist_ok=True)
print(theorems.names())

# %%
# 2. A theorem and what it claims. Printing a theorem gives its source and its statement; in a
# notebook, ``thm`` alone shows the statement typeset. Tab completion on ``thm.`` offers the
# verbs: derive, certify, check, figure, counterexample, audit.
thm = theorems.get("softmax-dispersion")
print(thm)
print(thm.title)

# %%
# 3. The derivation. Every step is checked by the computer; printed, a derivation says what
# each letter means, lists the hypotheses, the goal and every step with how it was checked,
# its citation, its status and its note. ``to_latex()`` typesets it for a paper (``theorems
# derive NAME --latex`` on the command line). The iso-perplexity derivation is the quickest to
# check (several seconds).
derivation = theorems.get("iso-perplexity").derive()
print(derivation.summary())
print("\n".join(str(derivation).splitlines()[:12]))  # the header and the first symbols
(out / "iso-perplexity-derivation.tex").write_text(derivation.to_latex(), encoding="utf-8")

# %%
# 4. A numeric check on a small grid of your own. ``check`` sweeps sizes x formats x policies
# (x the theorem's own axes: ``thm.parameters()`` lists them) and judges every row: the bound
# ``holds``, is ``violated``, or fails only through a named ``precision-effect``.
print(thm.parameters())
report = thm.check(quick=True, sizes=[2, 64, 4096], formats=["bf16", "fp32"], policies=["hw"])

# %%
# 5. Reading the report. Printed, it is a table per format and policy with a key to its
# columns; ``report.rows`` are the rows themselves (one dict per cell and quantity), and
# ``to_csv`` writes them. In a notebook, ``report`` alone shows the table.
print(report)
print(report.ok, report.counts)
print(report.rows[0])
report.to_csv(out / "softmax-dispersion-rows.csv")

# %%
# 6. A figure for a paper: pgfplots source that ``\input``s into a LaTeX document, its data as
# CSV, and a PDF preview.
files = thm.figure(out, quick=True)
print(files.tex.name, files.csv.name, files.pdf.name)

# %%
# 7. A counterexample. It prints as one sentence and its numbers; the arrays (here the logits)
# stay attributes, and ``witness["n"]`` reads a field too.
witness = thm.counterexample(sharpness=0.9, spread=4.0)
print(witness)
print(witness.logits)

# %%
# 8. The theorem's own functions return plain Python numbers (or arrays for arrays): from
# n = 8 on, no logits of spread 4 give any coefficient 0.9.
sd = theorems.softmax_dispersion
print(sd.min_size_for_dispersion(0.9, spread=4.0), sd.max_weight_bound(8, 4.0))
print(f"wrote {sorted(path.name for path in out.iterdir())} to {out}")

"""The tutorial in docs/ runs from start to end, and the README points to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.py"


def test_the_tutorial_runs_and_writes_what_it_says(tmp_path):
    done = subprocess.run([sys.executable, str(TUTORIAL), str(tmp_path / "out")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    written = {path.name for path in (tmp_path / "out").iterdir()}
    assert {"iso-perplexity-derivation.tex", "softmax-dispersion-rows.csv",
            "softmax-dispersion.tex", "softmax-dispersion.pdf"} <= written
    assert "derivation complete" in done.stdout
    assert "alpha_max >= 0.9 is impossible: n=8" in done.stdout
    assert "Traceback" not in done.stderr


def test_the_readme_links_the_tutorial():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/tutorial.py" in readme

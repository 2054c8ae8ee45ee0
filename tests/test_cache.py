"""The derivation cache: where it lives, hits and misses, corrupt entries, concurrent writers,
and the mutation audit, which must never read it."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import sympy as sp

import theorems
from proofs import Derivation, Step, eq, ge
from proofs.quantities import Quantities, Quantity
from theorems import Statement, Theorem, _cache
from theorems.audit import run_audit

x = sp.Symbol("x", positive=True)
y = sp.Symbol("y", real=True)
PAPER = Quantities("tiny", [
    Quantity("factor", 2, "constant", cite="eq. (1)",
             exempt={"x1.01": "a larger factor only loosens eq. (1)"}),
])


def tiny_evaluate(params: dict) -> list[dict]:
    return []


class Tiny(Theorem):
    """factor * y >= 4 for y = x + 2, x > 0: true for the paper's factor 2, not for 1.98."""

    name = "tiny"
    title = "a tiny theorem"
    source = "nowhere"
    statement = Statement(("y = x + 2", "x > 0"), "2y >= 4", "$2y \\ge 4$")
    quantities = PAPER
    evaluate = staticmethod(tiny_evaluate)

    def __init__(self):
        self.derived = 0

    def derive(self):
        """The derivation, counting how often it is built."""
        self.derived += 1
        claim = ge(PAPER["factor"] * y, 4)
        # a relation SymPy evaluates to True when it is rebuilt from its arguments
        tautology = sp.StrictGreaterThan(x + 1, x, evaluate=False)
        return Derivation.check(
            "tiny", source="nowhere", hypotheses=[("h_y", eq(y, x + 2))], goal=claim,
            steps=[Step("goal", claim, uses=("h_y",)), Step("more", tautology)])

    def axes(self, quick):
        """One cell."""
        return {"sizes": [2], "formats": ["fp64"], "policies": ["hw"], "seeds": [0]}

    def figure(self, out_dir, *, quick=True):
        """No figure."""

    def counterexample(self, **kwargs):
        """None."""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache directory of the test's own, and the tiny theorem's source in a file of it."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("THEOREMS_CACHE", str(directory))
    source = tmp_path / "tiny_proof.py"
    source.write_text("FACTOR = 2\n", encoding="utf-8")
    monkeypatch.setattr(_cache, "_sources", lambda theorem: [("proofs.tiny", source)])
    return directory, source


def entries(directory: Path) -> list[Path]:
    return sorted((directory / "derivations").glob("*"))


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("THEOREMS_CACHE", str(tmp_path / "mine"))
    assert _cache.cache_directory() == tmp_path / "mine"
    for off in ("off", "OFF", "0", "false"):
        monkeypatch.setenv("THEOREMS_CACHE", off)
        assert _cache.cache_directory() is None
    monkeypatch.delenv("THEOREMS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_directory() == tmp_path / "xdg" / "theorems"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache.cache_directory() == tmp_path / "home" / ".cache" / "theorems"


def test_a_hit_returns_an_equal_derivation_without_deriving(cache):
    directory, _ = cache
    theorem = Tiny()
    first = _cache.cached_derivation(theorem)
    second = _cache.cached_derivation(theorem)
    assert theorem.derived == 1 and len(entries(directory)) == 1
    assert second == first and second is not first
    assert str(second) == str(first) and second.to_latex() == first.to_latex()
    assert second.ok and second.step("more").claim == first.step("more").claim
    # what a plain pickle would give back: SymPy evaluates the rebuilt relations
    assert pickle.loads(pickle.dumps(first)) != first


def test_editing_the_source_misses_and_replaces_the_old_entry(cache):
    directory, source = cache
    theorem = Tiny()
    _cache.cached_derivation(theorem)
    (old,) = entries(directory)
    source.write_text("FACTOR = 2  # edited\n", encoding="utf-8")
    _cache.cached_derivation(theorem)
    assert theorem.derived == 2
    (new,) = entries(directory)  # the entry of the old source is gone, no temporary is left
    assert new != old and new.name.startswith("tiny.") and new.suffix == ".pickle"
    _cache.cached_derivation(theorem)
    assert theorem.derived == 2


def test_the_key_covers_the_proofs_modules_and_the_library_versions(monkeypatch):
    theorem = theorems.get("iso-perplexity")
    closure = dict(_cache._sources(theorem))
    assert "proofs.iso_perplexity" in closure and "proofs.steps" in closure
    assert not [name for name in closure if not name.startswith("proofs")]
    key = _cache.derivation_key(theorem)
    real = Path.read_bytes
    edited = closure["proofs.steps"]
    monkeypatch.setattr(Path, "read_bytes",
                        lambda path: real(path) + (b"#" if path == edited else b""))
    assert _cache.derivation_key(theorem) != key
    monkeypatch.setattr(Path, "read_bytes", real)
    monkeypatch.setattr(sp, "__version__", "0.0")  # not read: the installed metadata is
    versions = _cache.importlib.metadata.version
    monkeypatch.setattr(_cache.importlib.metadata, "version",
                        lambda name: "0.0" if name == "sympy" else versions(name))
    assert _cache.derivation_key(theorem) != key


@pytest.mark.parametrize("garbage", [b"", b"not a pickle", pickle.dumps({"key": "other"}),
                                     pickle.dumps(["a list"])])
def test_a_corrupt_entry_is_ignored_and_rebuilt(cache, garbage):
    directory, _ = cache
    theorem = Tiny()
    fresh = _cache.cached_derivation(theorem)
    (entry,) = entries(directory)
    entry.write_bytes(garbage)
    assert _cache.cached_derivation(theorem) == fresh and theorem.derived == 2
    assert _cache.cached_derivation(theorem) == fresh and theorem.derived == 2  # rebuilt


def test_off_derives_every_time_and_writes_nothing(cache, monkeypatch):
    directory, _ = cache
    monkeypatch.setenv("THEOREMS_CACHE", "off")
    theorem = Tiny()
    _cache.cached_derivation(theorem)
    _cache.cached_derivation(theorem)
    assert theorem.derived == 2 and not directory.exists()


def test_an_unwritable_cache_costs_time_not_a_result(cache, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("THEOREMS_CACHE", str(blocker / "cache"))  # below a file: cannot exist
    theorem = Tiny()
    assert _cache.cached_derivation(theorem).ok and theorem.derived == 1


def test_a_mutated_quantity_never_reads_the_cache(cache):
    directory, _ = cache
    theorem = Tiny()
    assert _cache.cached_derivation(theorem).ok
    (mutation,) = [m for m in PAPER.mutations() if m.label == "x0.99"]
    with PAPER.mutated(mutation):
        mutated = _cache.cached_derivation(theorem)
    assert theorem.derived == 2 and not mutated.ok  # derived afresh, under the mutation
    assert len(entries(directory)) == 1 and _cache.cached_derivation(theorem).ok


def test_the_audit_derives_afresh_even_with_a_cache_entry(cache):
    directory, _ = cache
    theorem = Tiny()
    _cache.cached_derivation(theorem)  # an entry of the unmutated derivation, which is ok
    audit = run_audit(theorem, bounds=False)
    entry = {e.mutation: e for e in audit.entries}["factor x0.99"]
    assert entry.caught and audit.ok  # a cached (unmutated) derivation would have missed it
    assert theorem.derived == 1 + 1 + len(PAPER.mutations())
    assert len(entries(directory)) == 1


def test_a_real_derivation_comes_back_as_it_was_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("THEOREMS_CACHE", str(tmp_path))
    theorem = theorems.get("iso-perplexity")
    fresh = _cache.cached_derivation(theorem)
    monkeypatch.setattr(sys.modules["proofs.iso_perplexity"], "derivation",
                        lambda: pytest.fail("derived again"))
    cached = _cache.cached_derivation(theorem)
    assert cached == fresh and str(cached) == str(fresh)
    assert cached.to_latex() == fresh.to_latex() and cached.summary() == fresh.summary()
    # the entry carries its LaTeX and its text, the same as the rebuilt expressions typeset and
    # printed afresh; another width is typeset on demand
    assert cached.__dict__["_typeset"] == {28.0: cached._to_latex(28.0)}
    assert cached.__dict__["_text"] == cached._to_text() == fresh._to_text()
    assert cached.to_latex(width=20.0) == fresh._to_latex(20.0) != cached.to_latex()

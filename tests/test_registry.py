"""The registry and the public surface: one table of stems, three files and a test file per stem,
lazy imports, and a facade whose ``__all__`` is documented and whose callables have docstrings."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import numerics
import proofs
import theorems
from theorems import _registry
from theorems._theorem import Theorem

ROOT = Path(__file__).resolve().parent.parent
#: The public names of ``theorems`` as the README and the design document use them.
DOCUMENTED = {"names", "get", "Theorem", "Statement", "Report"}


def modules(package: str) -> set[str]:
    """The public modules and subpackages directly under ``package``."""
    names = ({path.stem for path in (ROOT / package).glob("*.py")}
             | {path.parent.name for path in (ROOT / package).glob("*/__init__.py")})
    return {name for name in names if not name.startswith("_")}


def theorem_stems() -> set[str]:
    """Stems with a module in at least two of proofs/, numerics/ and theorems/."""
    found = [modules("proofs"), modules("numerics"), modules("theorems")]
    return {stem for stem in set().union(*found) if sum(stem in f for f in found) >= 2}


def test_every_registered_stem_has_its_three_files_and_its_tests():
    assert _registry._STEMS, "no theorem is registered"
    for stem in _registry._STEMS:
        assert (ROOT / f"tests/test_{stem}.py").is_file(), f"{stem} is registered untested"
        for layer in ("proofs", "numerics", "theorems"):
            # a module, or a package of that stem when one module would be too long
            paths = (ROOT / layer / f"{stem}.py", ROOT / layer / stem / "__init__.py")
            assert sum(p.is_file() for p in paths) == 1, f"{stem} needs exactly one of {paths}"


def test_every_theorem_module_is_registered():
    assert theorem_stems() == set(_registry._STEMS)


def test_names_follow_the_table():
    assert theorems.names() == [stem.replace("_", "-") for stem in _registry._STEMS]
    assert len(set(theorems.names())) == len(theorems.names())


@pytest.mark.parametrize("name", theorems.names())
def test_get_returns_the_registered_theorem(name):
    theorem = theorems.get(name)
    assert isinstance(theorem, Theorem) and theorem.name == name
    assert theorem.stem == name.replace("-", "_")
    assert type(theorem).__module__ == f"theorems.{theorem.stem}"
    assert callable(sys.modules[f"proofs.{theorem.stem}"].derivation)
    axes = theorem.axes(True)
    assert {"sizes", "formats", "policies", "seeds"} <= set(axes)


@pytest.mark.parametrize("bad,error,match", [
    ("softmax-dispersal", ValueError,
     r"^unknown theorem 'softmax-dispersal'; expected one of softmax-dispersion.* "
     r"\(did you mean 'softmax-dispersion'\?\)$"),
    ("softmax_dispersion", ValueError, r"did you mean 'softmax-dispersion'\?"),
    ("", ValueError, r"^unknown theorem ''"),
    (None, TypeError, r"^expected str but got theorem=None"),
])
def test_get_of_an_unknown_name_raises(bad, error, match):
    with pytest.raises(error, match=match):
        theorems.get(bad)


LIST_WITHOUT_HEAVY_WORK = textwrap.dedent("""
    import sys
    import proofs.derivation

    built = []
    original = proofs.derivation.Derivation.check.__func__

    def check(cls, *args, **kwargs):
        built.append(args[0] if args else kwargs.get("name"))
        return original(cls, *args, **kwargs)

    proofs.derivation.Derivation.check = classmethod(check)
    from theorems.cli import main

    status = main(["list"])
    assert status == 0, status
    assert "cupy" not in sys.modules, "theorems list imported cupy"
    assert built == [], f"theorems list built derivations: {built}"
    print("ok")
""")


def test_list_does_not_import_cupy_or_build_derivations(tmp_path):
    # a stand-in cupy that leaves a mark when anything imports it
    fake = tmp_path / "cupy"
    fake.mkdir()
    marker = tmp_path / "imported"
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", LIST_WITHOUT_HEAVY_WORK], capture_output=True,
                          text=True, timeout=120,
                          env={**_environ(), "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ok"
    listed = [line.split()[0] for line in done.stdout.splitlines()[:-1]]
    assert listed == theorems.names()
    assert not marker.exists()


LIST_IMPORTS = textwrap.dedent("""
    import json
    import sys
    from theorems.cli import main

    assert main(["list"]) == 0
    print(json.dumps(sorted(sys.modules)))
""")


def test_listing_imports_no_theorem_module_and_no_sympy():
    done = subprocess.run([sys.executable, "-c", LIST_IMPORTS], capture_output=True, text=True,
                          timeout=120, env=_environ())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    imported = set(json.loads(lines[-1]))
    heavy = {"sympy", "mpmath", "flint", "matplotlib", "scipy", "proofs"}
    assert not {name for name in imported if name.split(".")[0] in heavy}
    assert not {f"theorems.{stem}" for stem in _registry._STEMS} & imported
    # each line: the name, the title and the source the theorem's class states
    for line, name in zip(lines[:-1], theorems.names(), strict=True):
        theorem = theorems.get(name)
        assert line == f"{name:<28} {theorem.title}  ({theorem.source})"


def test_the_listing_table_matches_each_theorem_class():
    assert list(_registry._LISTING) == list(_registry._STEMS)
    for stem, (title, source) in _registry._LISTING.items():
        theorem = theorems.get(stem.replace("_", "-"))
        assert (title, source) == (theorem.title, theorem.source), stem


def test_a_theorem_missing_from_the_listing_table_is_listed_from_its_class(monkeypatch):
    monkeypatch.setattr(_registry, "_LISTING", {})
    theorem = theorems.get("iso-perplexity")
    listed = {name: (title, source) for name, title, source in _registry.listing()}
    assert listed["iso-perplexity"] == (theorem.title, theorem.source)
    assert list(listed) == theorems.names()


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("THEOREMS_BACKEND", "PYTHONPATH")}


def test_theorems_all_is_the_documented_api():
    assert set(theorems.__all__) == DOCUMENTED
    assert sorted(theorems.__all__) == theorems.__all__


@pytest.mark.parametrize("package", [theorems, numerics, proofs], ids=lambda p: p.__name__)
def test_facade_exports_exactly_its_public_names(package):
    public = {name for name in dir(package) if not name.startswith("_")
              and not inspect.ismodule(getattr(package, name))}
    assert set(package.__all__) == public


def public_callables(package):
    for name in package.__all__:
        obj = getattr(package, name)
        if not callable(obj):
            continue
        yield f"{package.__name__}.{name}", obj
        if inspect.isclass(obj):
            for attribute, value in vars(obj).items():
                if attribute.startswith("_"):
                    continue
                function = value.__func__ if isinstance(value, classmethod | staticmethod) \
                    else value
                if inspect.isfunction(function):
                    yield f"{package.__name__}.{name}.{attribute}", function


@pytest.mark.parametrize("package", [theorems, numerics, proofs], ids=lambda p: p.__name__)
def test_every_public_callable_has_a_docstring(package):
    missing = [name for name, obj in public_callables(package)
               if not (obj.__doc__ or "").strip()]
    assert missing == []


def test_registered_theorems_document_their_public_api():
    for name in theorems.names():
        theorem = theorems.get(name)
        module = sys.modules[type(theorem).__module__]
        assert (module.__doc__ or "").strip(), module.__name__
        for attribute in ("derive", "certify", "axes", "figure", "counterexample", "check"):
            assert (inspect.getdoc(getattr(theorem, attribute)) or "").strip(), attribute


@pytest.mark.parametrize("stem", _registry._STEMS)
def test_a_stored_cell_version_covers_the_theorem_and_nothing_of_other_theorems(stem):
    import hashlib

    from theorems._theorem import import_closure

    closure = dict(import_closure(f"theorems.{stem}"))
    for package in ("proofs", "numerics", "theorems"):
        assert f"{package}.{stem}" in closure  # editing the derivation a check reads counts
    others = set(_registry._STEMS) - {stem}
    assert not [name for name in closure if set(name.split(".")) & others]
    # a package entered as a parent brings its own file, not the siblings it re-exports
    if stem != "sae_amortisation":  # the one theorem that trains SAEs and runs FISTA
        assert "numerics.models.sae" not in closure and "numerics.solvers.fista" not in closure
    # the version is the hash of exactly those sources, recomputed here by hand
    digest = hashlib.sha256()
    for name in sorted(closure):
        digest.update(name.encode() + b"\0" + closure[name].read_bytes())
    assert theorems.get(stem.replace("_", "-")).code_version() == digest.hexdigest()[:16]


def test_imports_read_line_by_line_are_those_of_the_full_syntax_tree():
    import ast
    from pathlib import Path

    from theorems._theorem import import_statements

    root = Path(theorems.__file__).resolve().parent.parent
    sources = [path for package in ("theorems", "numerics", "proofs")
               for path in sorted((root / package).rglob("*.py"))]
    assert len(sources) > 50
    for path in sources:
        text = path.read_text(encoding="utf-8")
        walked = [node for node in ast.walk(ast.parse(text))
                  if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert sorted(map(ast.dump, import_statements(text))) == sorted(map(ast.dump, walked)), \
            path
    tricky = ("def f():\n    if x:\n        from .a import (b,\n            c)  # why\n"
              '"""\nfrom the prose, import nothing\n"""\nimport d.e as f, g\n')
    shown = [(getattr(node, "module", None), getattr(node, "level", None),
              [alias.name for alias in node.names]) for node in import_statements(tricky)]
    assert shown == [("a", 1, ["b", "c"]), (None, None, ["d.e", "g"])]
    # forms a line-wise reading would miss are read from the whole tree
    for odd in ('"""\nimport this is prose\n"""\nimport a\n',
                "from a import (b,  # see (1)\n    c)\n", "from a import b, \\\n    c\n",
                "try: import a.b\nexcept ImportError: pass\n", "x = 1; import a.b\n",
                "if TYPE_CHECKING: from a import b\n"):
        walked = [node for node in ast.walk(ast.parse(odd))
                  if isinstance(node, (ast.Import, ast.ImportFrom))]
        read = import_statements(odd)
        assert walked and list(map(ast.dump, read)) == list(map(ast.dump, walked)), odd


def test_a_theorem_missing_part_of_the_contract_cannot_be_built():
    class Half(Theorem):
        name = "half"

        def derive(self):
            return None

    with pytest.raises(TypeError, match="abstract method"):
        Half()


THROWAWAY = Path(__file__).resolve().parent / "throwaway"

VERSIONS = """
import theorems
print(" ".join(f"{name}={theorems.get(name).code_version()}" for name in theorems.names()))
"""


def test_a_new_theorem_is_its_three_files_its_tests_and_one_registry_line(tmp_path):
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    copy = tmp_path / "project"
    for name in tracked:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((ROOT / name).read_bytes())
    for layer in ("proofs", "numerics", "theorems"):
        (copy / layer / "throwaway.py").write_text(
            (THROWAWAY / f"{layer}_throwaway.py").read_text(encoding="utf-8"), encoding="utf-8")
    (copy / "tests" / "test_throwaway.py").write_text(
        "import theorems\n\n\ndef test_throwaway_derives():\n"
        "    assert theorems.get('throwaway').derive().ok\n", encoding="utf-8")
    registry = copy / "theorems" / "_registry.py"
    text = registry.read_text(encoding="utf-8")
    # the new stem goes last, before the tuple's closing parenthesis
    registry.write_text(text.replace('\n)\n', '\n    "throwaway",\n)\n', 1), encoding="utf-8")
    env = {**_environ(), "PYTHONPATH": str(copy)}

    def run(*args):
        done = subprocess.run([sys.executable, *args], cwd=copy, capture_output=True, text=True,
                              timeout=600, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert [line.split()[0] for line in run("-m", "theorems", "list").splitlines()][-1] == \
        "throwaway"
    assert "goal discharged by (goal)" in run("-m", "theorems", "derive", "throwaway")
    checked = run("-m", "theorems", "check", "throwaway", "--quick", "--out", str(tmp_path / "o"))
    assert "0 violated" in checked, checked
    assert "2 caught, 1 exempt (statement still true), 0 missed" in run(
        "-m", "theorems", "audit", "throwaway")
    run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_throwaway.py",
        "tests/test_registry.py", "-k", "throwaway or stem or registered or names")
    # the other theorems' stored cells stay valid: their versions do not change
    before = subprocess.run([sys.executable, "-c", VERSIONS], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**_environ(), "PYTHONPATH": str(ROOT)})
    after = run("-c", VERSIONS).split()
    assert set(before.stdout.split()) <= set(after) and len(after) == len(_registry._STEMS) + 1


def _public_modules():
    for package in (numerics, proofs, theorems):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                yield info.name


@pytest.mark.parametrize("name", sorted(_public_modules()))
def test_every_public_module_lists_what_it_defines(name):
    """A module's ``__all__`` names its API: every function and class the module defines
    without a leading underscore (a theorem's class is reached as its ``THEOREM``), and only
    names that exist."""
    module = importlib.import_module(name)
    listed = getattr(module, "__all__", None)
    assert listed is not None, f"{name} has no __all__"
    assert len(set(listed)) == len(listed) and all(hasattr(module, item) for item in listed)
    defined = {key for key, value in vars(module).items() if not key.startswith("_")
               and (inspect.isfunction(value) or inspect.isclass(value))
               and value.__module__ == name
               and not (inspect.isclass(value) and issubclass(value, Theorem))}
    assert defined <= set(listed), f"{name}.__all__ misses {sorted(defined - set(listed))}"

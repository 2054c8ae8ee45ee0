"""Every grid axis of a theorem is a parameter of ``check`` and of ``theorems check --axis``."""

import pytest

from numerics.errors import InvalidArgument
from theorems import get
from theorems.cli import main

#: Each theorem's axes besides sizes, formats, policies and seeds, as its docs name them.
AXES = {
    "softmax-dispersion": {"spread", "temperature"},
    "representational-collapse": {"experiment", "layers", "pe", "d"},
    "iso-perplexity": {"resolution"},
    "rank-deficit": {"temperatures", "datasets", "optimizers", "precision", "train"},
    "sae-amortisation": {"benchmark", "precision"},
}


@pytest.mark.parametrize("name", sorted(AXES))
def test_every_theorem_names_its_settable_axes(name):
    assert set(get(name).parameters()) == AXES[name]


def test_a_callers_axis_values_replace_the_default_grid():
    report = get("softmax-dispersion").check(sizes=[64], formats=["fp64"], policies=["hw"],
                                             seeds=[0], spread=[4], temperature=[0.5])
    assert {row["spread"] for row in report.rows} == {4.0}
    assert {row["temperature"] for row in report.rows} == {0.5}


def test_a_grouped_axis_takes_its_values_as_one_set():
    sweep = get("rank-deficit").plan(quick=True, temperatures=[3, "30"], formats=["fp32"],
                                     policies=["hw"])
    train = [dict(c.params) for c in sweep.cells if dict(c.params)["experiment"] == "train"]
    assert [cell["temperatures"] for cell in train] == [[3.0, 30.0]]


def test_a_switch_axis_leaves_cells_out():
    with_training = get("rank-deficit").plan(quick=True)
    without = get("rank-deficit").plan(quick=True, train=False)
    experiments = {dict(c.params)["experiment"] for c in without.cells}
    assert "train" not in experiments
    assert len(with_training.cells) > len(without.cells)


@pytest.mark.parametrize(("name", "axes", "says"), [
    ("softmax-dispersion", {"sprad": [1]}, "has no axis 'sprad'"),
    ("softmax-dispersion", {"spread": []}, "empty"),
    ("softmax-dispersion", {"spread": [float("nan")]}, "finite"),
    ("softmax-dispersion", {"spread": [-1]}, "negative"),
    ("softmax-dispersion", {"temperature": [0]}, "positive"),
    ("softmax-dispersion", {"spread": ["wide"]}, "finite"),
    ("softmax-dispersion", {"spread": [1j]}, "finite"),
    ("representational-collapse", {"pe": ["learned"]}, "pe"),
    ("representational-collapse", {"pe": ["rope"], "d": [15]}, "even d"),
    ("representational-collapse", {"d": [0]}, "positive"),
    ("representational-collapse", {"d": [10**6]}, "above"),
    ("iso-perplexity", {"resolution": [1]}, "resolution"),
    ("rank-deficit", {"train": ["maybe"]}, "true or false"),
    ("rank-deficit", {"datasets": ["imagenet"]}, "imagenet"),
])
def test_bad_axis_values_are_refused_before_any_work(name, axes, says):
    with pytest.raises(InvalidArgument, match=says):
        get(name).plan(quick=True, **axes)


def test_the_command_line_sets_axes_and_prints_the_grid_first(capsys):
    status = main(["check", "softmax-dispersion", "--sizes", "16", "--formats", "fp64",
                   "--policies", "hw", "--seeds", "0", "--axis", "spread=1,16",
                   "--axis", "temperature=1"])
    captured = capsys.readouterr()
    assert status == 0
    grid = captured.out.splitlines()[0]
    assert grid.startswith("grid: 2 cells;") and "spread 1, 16" in grid
    assert "softmax-dispersion: " in captured.out.splitlines()[1]


@pytest.mark.parametrize("option", ["spread", "spread=", "=1", "sprad=1"])
def test_a_malformed_axis_option_is_one_error_line(option, capsys):
    status = main(["check", "softmax-dispersion", "--sizes", "16", "--axis", option])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("theorems: error:")

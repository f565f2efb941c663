"""Hostile and malformed specs through ``bot4 sweep``: one line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot4 import cli
from bot4.sweep.spec import load_spec

BAD = [
    ("nme = 'x'\nscenarios = ['reverting.toml']", "spec.toml: unknown key 'nme'"),
    ("scenarios = []", "spec.toml: scenarios must be a non-empty list"),
    ("scenarios = ['missing.toml']", "spec.toml: scenario missing.toml: cannot read"),
    ("scenarios = ['reverting.toml']\nseeds = [1, 1]", "spec.toml: seeds has duplicates"),
    ("scenarios = ['reverting.toml']\nseeds = [-1]", "spec.toml: seeds must be a non-empty"),
    ("scenarios = ['reverting.toml']\nduration_s = 0", "spec.toml: duration_s must be > 0"),
    ("scenarios = ['reverting.toml']\nsearch = 'bayes'", "search must be 'grid' or 'random'"),
    ("scenarios = ['reverting.toml']\nsamples = 3", "samples is only for search = 'random'"),
    (
        "scenarios = ['reverting.toml']\n[params]\n'gate.alpha' = 0.5",
        "params.gate.alpha must be a list of values for a grid search",
    ),
    (
        "scenarios = ['reverting.toml']\n[params]\n'gate.alpha' = [0.1, 'x']",
        "params.gate.alpha: values mix types",
    ),
    (
        "scenarios = ['reverting.toml']\n[params]\n'gate.nope' = [1]",
        "gate: unknown key 'nope'",
    ),
    (
        "scenarios = ['reverting.toml']\n[params]\n'step_ms' = [-1]",
        "step_ms must be > 0",
    ),
    (
        "scenarios = ['reverting.toml']\nsearch = 'random'\nsamples = 2\n"
        "[params]\n'gate.alpha' = {low = 0.5, high = 0.1}",
        "params.gate.alpha: low must be < high",
    ),
    ("scenarios = ['reverting.toml'", "spec.toml: invalid TOML"),
    ("name = ''\nscenarios = ['reverting.toml']", "name must be a non-empty string"),
    ("scenarios = ['reverting.toml', 'reverting.toml']", "scenarios has duplicates"),
    ("scenarios = [1]", "scenarios must be a non-empty list of scenario file paths"),
    ("scenarios = ['engine.toml']", "spec.toml: scenario engine.toml:"),
    (
        "scenarios = ['reverting.toml', './reverting.toml']",
        "two cells have identical inputs",
    ),
    ("scenarios = ['reverting.toml']\nengine = 3", "engine must be a path"),
    ("scenarios = ['reverting.toml']\nengine = 'none.toml'", "cannot read engine config"),
    ("scenarios = ['reverting.toml']\nduration_s = inf", "duration_s must be a finite number"),
    ("scenarios = ['reverting.toml']\nseeds = {count = 0}", "seeds.count must be ≥ 1"),
    ("scenarios = ['reverting.toml']\nseeds = {first = 1}", "seeds must be a list of integers or"),
    ("scenarios = ['reverting.toml']\nseeds = {count = 'x'}", "must be integers"),
    ("scenarios = ['reverting.toml']\nparams = 3", "[params] must be a table"),
    ("scenarios = ['reverting.toml']\n[params]\n'gate.alpha' = []", "is an empty list"),
    ("scenarios = ['reverting.toml']\n[params]\n'gate.alpha' = [[1]]", "must be numbers, strings"),
    ("scenarios = ['reverting.toml']\n[params]\n'gate.alpha' = [nan]", "values must be finite"),
    ("scenarios = ['reverting.toml']\n[params]\n'gate.alpha' = [0.1, 0.1]", "duplicate values"),
    (
        "scenarios = ['reverting.toml']\nengine = 'engine.toml'\n[params]\n'strategy.x' = [1]",
        "'strategy' is not a table in the engine config",
    ),
    (
        "scenarios = ['reverting.toml']\nsearch = 'random'\nsamples = 0",
        "samples must be an integer ≥ 1",
    ),
    (
        "scenarios = ['reverting.toml']\nsearch = 'random'\nsamples = 1\nsample_seed = 'x'",
        "sample_seed must be an integer",
    ),
    (
        "scenarios = ['reverting.toml']\nsearch = 'random'\nsamples = 1\n"
        "[params]\n'gate.alpha' = 1",
        "must be a list (choice) or {low, high}",
    ),
    (
        "scenarios = ['reverting.toml']\nsearch = 'random'\nsamples = 1\n[params]\n"
        "'gate.alpha' = {low = 0.1, high = 0.5, step = 1}",
        "params.gate.alpha: unknown key 'step'",
    ),
    (
        "scenarios = ['reverting.toml']\nsearch = 'random'\nsamples = 1\n[params]\n"
        "'gate.alpha' = {low = 0.1, high = 0.5, log = 1}",
        "params.gate.alpha.log must be true or false",
    ),
    (
        "scenarios = ['reverting.toml']\nsearch = 'random'\nsamples = 1\n[params]\n"
        "'gate.alpha' = {low = 0.0, high = 0.5, log = true}",
        "log needs low > 0",
    ),
    (
        "scenarios = ['reverting.toml']\nsearch = 'random'\nsamples = 1\n[params]\n"
        "'gate.alpha' = {low = 'a', high = 0.5}",
        "params.gate.alpha.low must be a finite number",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_spec_is_one_line_exit_2_and_nothing_written(
    workspace: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    message: str,
) -> None:
    (workspace / "spec.toml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(workspace)
    out = workspace / "out"
    assert cli.main(["sweep", "spec.toml", "--out", str(out), "--executor", "serial"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bot4: error: ")
    assert message in err
    assert not out.exists()


def test_missing_key_is_refused_before_anything_runs(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT4_SECRETS_DIR", str(workspace / "no-secrets"))
    out = workspace / "out"
    code = cli.main(["sweep", str(workspace / "spec.toml"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "create one with: bot4 audit keygen --key-id audit-checkpoint" in err
    assert not out.exists()


def test_grid_expands_params_scenarios_seeds_with_path_free_ids(workspace: Path) -> None:
    spec = load_spec(workspace / "spec.toml")
    assert len(spec.cells) == 4
    assert [(c.params, c.seed) for c in spec.cells] == [
        ((("strategy_params.lookback", 10),), 1),
        ((("strategy_params.lookback", 10),), 2),
        ((("strategy_params.lookback", 20),), 1),
        ((("strategy_params.lookback", 20),), 2),
    ]
    moved = workspace.parent / "elsewhere"
    workspace.rename(moved)
    again = load_spec(moved / "spec.toml")
    assert [c.cell_id for c in again.cells] == [c.cell_id for c in spec.cells]
    assert again.digest == spec.digest


def test_random_search_is_seeded_and_drops_repeated_draws(workspace: Path) -> None:
    text = (
        "scenarios = ['reverting.toml']\nengine = 'engine.toml'\nsearch = 'random'\n"
        "samples = 6\nsample_seed = {seed}\n[params]\n"
        "'strategy_params.entry_z' = {{low = 0.5, high = 2.0}}\n"
        "'strategy_params.lookback' = {{low = 5, high = 50, log = true, integer = true}}\n"
    )
    path = workspace / "random.toml"
    path.write_text(text.format(seed=7), encoding="utf-8")
    first = load_spec(path)
    assert len(first.cells) == 6
    assert load_spec(path).cells == first.cells
    values = [dict(c.params) for c in first.cells]
    assert all(0.5 <= float(v["strategy_params.entry_z"]) <= 2.0 for v in values)
    assert all(isinstance(v["strategy_params.lookback"], int) for v in values)
    path.write_text(text.format(seed=8), encoding="utf-8")
    assert [c.params for c in load_spec(path).cells] != [c.params for c in first.cells]
    path.write_text(
        "scenarios = ['reverting.toml']\nsearch = 'random'\nsamples = 20\n"
        "[params]\n'gate.alpha' = [0.1, 0.5]\n",
        encoding="utf-8",
    )
    assert len(load_spec(path).cells) == 2


def test_the_example_demo_spec_validates_to_200_cells() -> None:
    spec = load_spec(Path(__file__).resolve().parents[3] / "examples" / "sweep.toml")
    assert len(spec.cells) == 200
    assert {c.scenario for c in spec.cells} == {"reverting.toml", "reverting_outage.toml"}


def test_mixed_int_and_float_values_become_floats(workspace: Path) -> None:
    path = workspace / "mixed.toml"
    path.write_text(
        "scenarios = ['reverting.toml']\n[params]\n'strategy_params.entry_z' = [1, 0.5]\n",
        encoding="utf-8",
    )
    assert [c.params for c in load_spec(path).cells] == [
        (("strategy_params.entry_z", 1.0),),
        (("strategy_params.entry_z", 0.5),),
    ]

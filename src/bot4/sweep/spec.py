"""The sweep spec (TOML): which scenarios, seeds and engine parameters to run, as cells.

Validated like every other config before anything runs: unknown keys, wrong types and
every cell's engine config (the base engine file with the cell's parameters applied,
checked by ``bot4.trading_engine.config``) are refused with one line naming the key.

    name = "reverting-grid"
    scenarios = ["../examples/reverting.toml"]     # paths relative to this file
    engine = "../examples/engine.toml"             # optional base engine config
    seeds = [1, 2, 3]                              # or {first = 1, count = 10}
    duration_s = 10.0                              # optional; default: each scenario's
    search = "grid"                                # or "random"
    samples = 20                                   # random: parameter sets drawn
    sample_seed = 7                                # random: seed of the draw

    [params]                                       # dotted engine-config keys
    "strategy_params.lookback" = [10, 20, 40]      # a list: every value (grid) / a choice (random)
    "strategy_params.entry_z" = {low = 0.5, high = 2.0}   # random only: uniform (log = true,
                                                          # integer = true optional)

Cells are every parameter set × scenario × seed, in that order; a cell's identity is
the hash of its inputs' contents (scenario, replay data and engine files, parameters,
seed, duration), never of a path, so the same spec gives the same cells on any clone.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot4.errors import Bot4Error
from bot4.simulator.errors import SimulatorError
from bot4.simulator.scenario import Scenario, load_scenario
from bot4.trading_engine.config import parse_engine_config
from bot4.trading_engine.errors import TradingEngineError

ParamValue = int | float | str | bool
_KEYS = {
    "name",
    "scenarios",
    "engine",
    "seeds",
    "duration_s",
    "search",
    "samples",
    "sample_seed",
    "params",
}
MAX_CELLS = 100_000


class SweepError(Bot4Error):
    """A sweep that cannot run as asked: bad spec, bad results directory, missing extra."""


class SweepInterruptedError(SweepError):
    """A sweep stopped part-way by its workers or cluster (a worker process died, the
    scheduler went away): the finished cells are kept and the same command resumes.
    Its own exit code, so a wrapper can tell "retry" from "fix the input"."""

    exit_code = 3


@dataclass(frozen=True)
class ScenarioInput:
    """One scenario as the cells need it: the validated scenario and its files' bytes."""

    label: str  # as written in the spec
    scenario: Scenario
    replays: tuple[tuple[str, bytes], ...]  # (instrument symbol, replay CSV bytes)
    digest: str  # sha256 over the scenario file and its replay files


@dataclass(frozen=True)
class Cell:
    """One engine run: a scenario, a seed and an engine config (base + parameters)."""

    index: int
    cell_id: str
    scenario: str  # label
    seed: int
    params: tuple[tuple[str, ParamValue], ...]
    engine_doc: Mapping[str, Any]
    duration_s: float


@dataclass(frozen=True)
class SweepSpec:
    """A validated spec and the cells it expands to."""

    name: str
    source: str
    digest: str
    param_names: tuple[str, ...]
    scenarios: Mapping[str, ScenarioInput]
    cells: tuple[Cell, ...]


def _err(source: str, message: str) -> SweepError:
    return SweepError(f"{source}: {message}")


def _number(value: object, where: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _err(source, f"{where} must be a finite number, got {value!r}")
    return float(value)


def _seeds(value: object, source: str) -> list[int]:
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"first", "count"})
        if unknown or "count" not in value:
            raise _err(source, "seeds must be a list of integers or {first = N, count = M}")
        first, count = value.get("first", 0), value["count"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (first, count)):
            raise _err(source, "seeds.first and seeds.count must be integers")
        if count < 1 or first < 0:
            raise _err(source, "seeds.count must be ≥ 1 and seeds.first ≥ 0")
        return list(range(first, first + count))
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise _err(source, "seeds must be a non-empty list of integers ≥ 0 or {first, count}")
    if len(set(value)) != len(value):
        raise _err(source, "seeds has duplicates")
    return list(value)


def _choices(key: str, values: list[Any], source: str) -> list[ParamValue]:
    if not values:
        raise _err(source, f"params.{key} is an empty list")
    kinds = {type(v) for v in values}
    if not all(isinstance(v, int | float | str | bool) for v in values):
        raise _err(source, f"params.{key}: values must be numbers, strings or booleans")
    if kinds == {int, float}:
        values = [float(v) for v in values]
    elif len(kinds) > 1:
        raise _err(source, f"params.{key}: values mix types {sorted(k.__name__ for k in kinds)}")
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise _err(source, f"params.{key}: values must be finite")
    if len(set(values)) != len(values):
        raise _err(source, f"params.{key} has duplicate values")
    return values


def _draw(key: str, dist: Mapping[str, Any], rng: random.Random, source: str) -> ParamValue:
    low = _number(dist.get("low"), f"params.{key}.low", source)
    high = _number(dist.get("high"), f"params.{key}.high", source)
    if dist.get("log", False):
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    return round(value) if dist.get("integer", False) else value


def _check_dist(key: str, dist: Mapping[str, Any], source: str) -> None:
    unknown = sorted(set(dist) - {"low", "high", "log", "integer"})
    if unknown:
        raise _err(
            source, f"params.{key}: unknown key {unknown[0]!r} (known: low, high, log, integer)"
        )
    low = _number(dist.get("low"), f"params.{key}.low", source)
    high = _number(dist.get("high"), f"params.{key}.high", source)
    for flag in ("log", "integer"):
        if not isinstance(dist.get(flag, False), bool):
            raise _err(source, f"params.{key}.{flag} must be true or false")
    if not low < high:
        raise _err(source, f"params.{key}: low must be < high")
    if dist.get("log", False) and low <= 0:
        raise _err(source, f"params.{key}: log needs low > 0")


def _grid(params: Mapping[str, Any], source: str) -> list[dict[str, ParamValue]]:
    keys = sorted(params)
    lists = []
    for key in keys:
        if not isinstance(params[key], list):
            raise _err(source, f"params.{key} must be a list of values for a grid search")
        lists.append(_choices(key, params[key], source))
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists)]


def _random(
    data: Mapping[str, Any], params: Mapping[str, Any], source: str
) -> list[dict[str, ParamValue]]:
    samples, seed = data.get("samples"), data.get("sample_seed", 0)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise _err(source, "samples must be an integer ≥ 1 for search = 'random'")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise _err(source, "sample_seed must be an integer")
    keys = sorted(params)
    for key in keys:
        if isinstance(params[key], list):
            _choices(key, params[key], source)
        elif isinstance(params[key], dict):
            _check_dist(key, params[key], source)
        else:
            raise _err(source, f"params.{key} must be a list (choice) or {{low, high}}")
    rng = random.Random(seed)  # noqa: S311  # nosec B311 - a seeded draw, not a secret
    sets: list[dict[str, ParamValue]] = []
    for _ in range(samples):
        drawn = {
            key: rng.choice(params[key])
            if isinstance(params[key], list)
            else _draw(key, params[key], rng, source)
            for key in keys
        }
        if drawn not in sets:  # a repeated draw is the same cell: run it once
            sets.append(drawn)
    return sets


def _param_sets(data: Mapping[str, Any], source: str) -> list[dict[str, ParamValue]]:
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise _err(source, "[params] must be a table of dotted engine-config keys")
    search = data.get("search", "grid")
    if search not in ("grid", "random"):
        raise _err(source, f"search must be 'grid' or 'random', got {search!r}")
    for key in ("samples", "sample_seed"):
        if key in data and search != "random":
            raise _err(source, f"{key} is only for search = 'random'")
    return _grid(params, source) if search == "grid" else _random(data, params, source)


def apply_params(base: Mapping[str, Any], params: Mapping[str, ParamValue]) -> dict[str, Any]:
    """The engine document with each dotted key set (tables created as needed)."""
    doc = copy.deepcopy(dict(base))
    for dotted, value in params.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SweepError(f"params.{dotted}: {part!r} is not a table in the engine config")
            node = child
        node[leaf] = value
    return doc


def _read_toml(path: Path, what: str) -> tuple[dict[str, Any], bytes]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SweepError(f"{path}: cannot read {what} ({exc.strerror})") from None
    try:
        return tomllib.loads(raw.decode("utf-8")), raw
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SweepError(f"{path}: invalid TOML ({exc})") from None


def _scenario(base: Path, label: object, source: str) -> ScenarioInput:
    if not isinstance(label, str) or not label:
        raise _err(source, "scenarios must be a non-empty list of scenario file paths")
    path = base / label
    try:
        raw = path.read_bytes()
        scenario = load_scenario(path)
    except OSError as exc:
        raise _err(source, f"scenario {label}: cannot read ({exc.strerror})") from None
    except SimulatorError as exc:
        raise _err(source, f"scenario {label}: {exc}") from None
    digest = hashlib.sha256(raw)
    replays = []
    for inst in scenario.instruments:
        if inst.replay is not None:
            try:
                data = inst.replay.read_bytes()
            except OSError as exc:
                raise _err(
                    source, f"scenario {label}: replay {inst.replay.name}: {exc.strerror}"
                ) from None
            digest.update(hashlib.sha256(data).digest())
            replays.append((inst.symbol, data))
    return ScenarioInput(label, scenario, tuple(replays), digest.hexdigest())


def _cell_id(parts: Mapping[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _header(data: Mapping[str, Any], path: Path) -> tuple[str, list[int], float | None]:
    """The spec's name, seeds and duration override, checked."""
    source = path.name
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _err(source, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise _err(source, "name must be a non-empty string")
    labels = data.get("scenarios")
    if not isinstance(labels, list) or not labels:
        raise _err(source, "scenarios must be a non-empty list of scenario file paths")
    if len(set(map(str, labels))) != len(labels):
        raise _err(source, "scenarios has duplicates")
    duration = data.get("duration_s")
    if duration is not None and _number(duration, "duration_s", source) <= 0:
        raise _err(source, "duration_s must be > 0")
    return name, _seeds(data.get("seeds", [0]), source), duration


def _engine(data: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    if "engine" not in data:
        return {}, ""
    if not isinstance(data["engine"], str):
        raise _err(path.name, "engine must be a path to an engine config TOML")
    doc, raw = _read_toml(path.parent / data["engine"], "engine config")
    return doc, hashlib.sha256(raw).hexdigest()


def load_spec(path: Path) -> SweepSpec:
    """Read, validate and expand a sweep spec; every cell's engine config is checked."""
    data, raw = _read_toml(path, "sweep spec")
    source = path.name
    name, seeds, duration = _header(data, path)
    sets = _param_sets(data, source)
    scenarios = {str(label): _scenario(path.parent, label, source) for label in data["scenarios"]}
    engine_doc, engine_digest = _engine(data, path)
    total = len(sets) * len(scenarios) * len(seeds)
    if total > MAX_CELLS:
        raise _err(source, f"{total} cells is more than the {MAX_CELLS} a sweep may have")
    cells: list[Cell] = []
    for params in sets:
        try:
            doc = apply_params(engine_doc, params)
        except SweepError as exc:
            raise _err(source, str(exc)) from None
        ordered = tuple(sorted(params.items()))
        for label, inp in scenarios.items():
            try:
                parse_engine_config(doc, inp.scenario, f"engine config with {params}")
            except TradingEngineError as exc:
                raise _err(source, str(exc)) from None
            dur = float(duration) if duration is not None else inp.scenario.duration_s
            for seed in seeds:
                identity = {
                    "scenario": inp.digest,
                    "engine": engine_digest,
                    "params": [[k, v] for k, v in ordered],
                    "seed": seed,
                    "duration_s": dur,
                }
                cells.append(Cell(len(cells), _cell_id(identity), label, seed, ordered, doc, dur))
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        raise _err(source, "two cells have identical inputs (the same scenario file twice?)")
    digest = hashlib.sha256(raw + "\n".join(ids).encode()).hexdigest()
    return SweepSpec(
        name, source, digest, tuple(sorted(data.get("params", {}))), scenarios, tuple(cells)
    )

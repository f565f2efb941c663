"""The CycloneDX SBOM: a real venv from a hashed lock, cyclonedx-py, enrichment, drift."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ci import cli
from ci.errors import GateError
from ci.gate import toolchain
from ci.gate.requirements import parse_lock, read_lock
from ci.supply_chain import sbom

PYPROJECT = (
    '[project]\nname = "demo-app"\nversion = "0.1.0"\nlicense = "Apache-2.0"\n'
    'dependencies = ["demo-pkg"]\n'
)


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(directory: Path, name: str = "demo_pkg", version: str = "1.0") -> Path:
    """A real, minimal pure-Python wheel (what any build backend would produce)."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"VALUE = 1\n",
        f"{info}/METADATA": (
            f"Metadata-Version: 2.4\nName: {name.replace('_', '-')}\nVersion: {version}\n"
            "License-Expression: MIT\nSummary: demo\n"
        ).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "\n".join([*(record_line(k, v) for k, v in files.items()), f"{info}/RECORD,,"]) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as zf:
        for rel, data in [*files.items(), (f"{info}/RECORD", record.encode())]:
            zf.writestr(zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return wheel


@pytest.fixture
def uv() -> str:
    try:
        return toolchain.find_uv(None)
    except GateError:
        pytest.skip("uv not available (the gate passes the pinned one in $UV)")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    wheel = build_wheel(tmp_path / "wheels")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "runtime.txt").write_text(
        f"demo-pkg==1.0 \\\n    --hash=sha256:{digest}\n", encoding="utf-8"
    )
    (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    return tmp_path


def generate(root: Path, uv: str) -> str:
    return sbom.generate(
        root,
        uv,
        [root / "locks" / "runtime.txt"],
        root / "pyproject.toml",
        ["--no-index", "--find-links", str(root / "wheels")],
    ).text


@pytest.mark.e2e
def test_generate_is_valid_enriched_and_byte_stable(project: Path, uv: str) -> None:
    first = generate(project, uv)
    assert generate(project, uv) == first
    data = json.loads(first)
    assert (data["bomFormat"], data["specVersion"]) == ("CycloneDX", "1.6")
    assert data["metadata"]["component"]["name"] == "demo-app"
    (component,) = data["components"]
    digest = parse_lock((project / "locks" / "runtime.txt").read_text(encoding="utf-8"), "l")[
        0
    ].hashes[0]
    assert component["purl"] == "pkg:pypi/demo-pkg@1.0"
    assert component["hashes"] == [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]
    assert {"name": "bot4:lock", "value": "locks/runtime.txt:1"} in component["properties"]
    assert str(project) not in first  # nothing depends on where the venv was built


@pytest.mark.e2e
def test_cli_writes_then_checks_and_reports_drift(
    project: Path, uv: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UV_NO_INDEX", "1")
    monkeypatch.setenv("UV_FIND_LINKS", str(project / "wheels"))
    base = ["--root", str(project), "sbom", "--uv", uv, "--lock", "locks/runtime.txt"]
    base += ["--pyproject", "pyproject.toml", "--output", "sbom/bot4-python.cdx.json"]
    write = (
        f"python -m ci --root {project} sbom --lock locks/runtime.txt --pyproject "
        "pyproject.toml --output sbom/bot4-python.cdx.json"
    )
    assert cli.main([*base, "--check"]) == 1
    assert f"does not exist; generate it with {write}\n" in capsys.readouterr().err
    assert cli.main(base) == 0
    written = project / "sbom" / "bot4-python.cdx.json"
    assert "wrote sbom/bot4-python.cdx.json" in capsys.readouterr().out
    assert cli.main([*base, "--check"]) == 0
    assert "is up to date" in capsys.readouterr().out
    stale = json.loads(written.read_text(encoding="utf-8"))
    stale["components"][0]["version"] = "0.9"
    written.write_text(sbom.serialize(stale), encoding="utf-8")
    assert cli.main([*base, "--check"]) == 1
    out, err = capsys.readouterr()
    assert "~ demo-pkg 0.9 → 1.0" in out
    assert err == (
        f"ci: error: sbom/bot4-python.cdx.json is stale; regenerate it with {write} and commit it\n"
    )


def test_install_failure_is_one_line(project: Path, uv: str) -> None:
    (project / "locks" / "runtime.txt").write_text(
        "demo-pkg==1.0 --hash=sha256:" + "0" * 64 + "\n", encoding="utf-8"
    )
    with pytest.raises(GateError, match=r"^installing .*runtime.txt with uv failed: "):
        generate(project, uv)
    with pytest.raises(GateError, match="uv venv failed: "):
        sbom.install_runtime(
            str(project / "no-uv"), [project / "locks" / "runtime.txt"], project / "v"
        )


def bom(*components: dict[str, Any]) -> dict[str, Any]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": list(components),
    }


PINS, _ = sbom.applicable_pins(
    [
        (
            "locks/runtime.txt",
            parse_lock(
                "six==1.17.0 --hash=sha256:" + "b" * 64 + " --hash=sha256:" + "a" * 64 + "\n"
                "Prometheus_Client==0.26.0 --hash=sha256:" + "c" * 64 + "\n",
                "locks/runtime.txt",
            ),
        )
    ],
    {},
)


@pytest.mark.e2e
def test_enrich_requires_exactly_the_lock() -> None:
    good = bom(
        {
            "type": "library",
            "name": "six",
            "version": "1.17.0",
            "properties": [{"name": "bot4:lock", "value": "old"}],
        },
        {"type": "library", "name": "prometheus_client", "version": "0.26.0"},
    )
    enriched = sbom.enrich(copy.deepcopy(good), PINS)
    assert [c["purl"] for c in enriched["components"]] == [
        "pkg:pypi/prometheus-client@0.26.0",
        "pkg:pypi/six@1.17.0",
    ]
    six = enriched["components"][1]
    assert [h["content"][0] for h in six["hashes"]] == ["a", "b"]
    assert [p["name"] for p in six["properties"]] == ["bot4:hashes", "bot4:lock"]
    sbom.validate(sbom.serialize(enriched))
    with pytest.raises(GateError, match=r"component extra is not pinned in locks/runtime\.txt"):
        sbom.enrich(bom({"type": "library", "name": "extra", "version": "1"}), PINS)
    with pytest.raises(GateError, match=r"six 1.16.0 differs from locks/runtime.txt \(1.17.0\)"):
        sbom.enrich(bom({"type": "library", "name": "six", "version": "1.16.0"}), PINS)
    with pytest.raises(
        GateError, match="pins prometheus-client for this environment but the SBOM has no such"
    ):
        sbom.enrich(bom({"type": "library", "name": "six", "version": "1.17.0"}), PINS)


def test_validate_rejects_invalid_cyclonedx() -> None:
    with pytest.raises(GateError, match=r"not valid CycloneDX 1\.6: 'type' is a required"):
        sbom.validate(json.dumps(bom({"name": "x"})))


def test_validate_still_checks_iri_references_with_the_grammar_built_on_first_use() -> None:
    """rfc3987_syntax's parsers are compiled when first used, not at import; the
    ``iri-reference`` format is still checked (a URL with a space is refused)."""
    script = """
import json, sys
import lark
from ci.errors import GateError
from ci.supply_chain import sbom
good = json.loads(sys.argv[1])
bad = json.loads(sys.argv[1])
bad["components"][0]["externalReferences"] = [{"type": "website", "url": "http://a b/"}]
good["components"][0]["externalReferences"] = [{"type": "website", "url": "https://x.org/a"}]
sbom.validate(json.dumps(good))
try:
    sbom.validate(json.dumps(bad))
except GateError as error:
    print(error)
import rfc3987_syntax.syntax_helpers as helpers
print(type(helpers.syntax_parser).__name__, lark.Lark is lark.lark.Lark)
"""
    doc = json.dumps(bom({"type": "library", "name": "six", "version": "1.17.0"}))
    proc = subprocess.run(
        [sys.executable, "-c", script, doc],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
        timeout=120,
    )
    refused, lazy = proc.stdout.splitlines()
    assert refused.startswith("generated SBOM is not valid CycloneDX 1.6: ")
    assert "http://a b/" in refused
    assert lazy == "_ParserOnFirstUse True"  # lark.Lark put back after the one import


def test_diff_summary() -> None:
    old = sbom.serialize(
        bom(
            {"type": "library", "name": "a", "version": "1"},
            {"type": "library", "name": "b", "version": "1"},
        )
    )
    new = sbom.serialize(
        bom(
            {"type": "library", "name": "b", "version": "1", "purl": "p"},
            {"type": "library", "name": "c", "version": "2"},
        )
    )
    assert sbom.diff_summary(old, new) == ["+ c 2", "- a 1", "~ b: purl changed"]
    meta_only = sbom.serialize({**bom(), "serialNumber": "x"})
    assert sbom.diff_summary(sbom.serialize(bom()), meta_only) == [
        "outside the components (first difference at line 4)"
    ]
    assert sbom.diff_summary("not json", sbom.serialize(bom())) == [
        "outside the components (first difference at line 1)"
    ]
    many = sbom.serialize(
        bom(*({"type": "library", "name": f"p{i}", "version": "1"} for i in range(20)))
    )
    summary = sbom.diff_summary(sbom.serialize(bom()), many, limit=3)
    assert summary[-1] == "… and 17 more" and len(summary) == 4


@pytest.mark.e2e
def test_committed_sbom_describes_the_runtime_lock() -> None:
    repo = Path(__file__).resolve().parents[3]
    data = json.loads((repo / sbom.DEFAULT_OUTPUT).read_text(encoding="utf-8"))
    pins = {str(p.name): str(p.version) for p in read_lock(repo / sbom.DEFAULT_LOCK)}
    assert {c["purl"].split("/")[1].split("@")[0]: c["version"] for c in data["components"]} == pins
    sbom.validate((repo / sbom.DEFAULT_OUTPUT).read_text(encoding="utf-8"))


@pytest.mark.e2e
def test_universal_lock_without_pyproject_and_an_existing_venv(
    project: Path, uv: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another project's `uv pip compile --universal` lock: a pin for another platform is
    not missing, no pyproject.toml is needed, and --venv describes a venv as it is."""
    monkeypatch.setenv("UV_NO_INDEX", "1")
    monkeypatch.setenv("UV_FIND_LINKS", str(project / "wheels"))
    (project / "pyproject.toml").unlink()
    lock = project / "locks" / "runtime.txt"
    lock.write_text(
        lock.read_text(encoding="utf-8")
        + "colorama==0.4.6 ; sys_platform == 'win32' --hash=sha256:"
        + "c" * 64
        + "\n",
        encoding="utf-8",
    )
    base = ["--root", str(project), "sbom", "--uv", uv, "--lock", "locks/runtime.txt"]
    assert cli.main(base) == 0
    out, err = capsys.readouterr()
    assert err == (
        'sbom: not installed here (environment markers): colorama 0.4.6 ; sys_platform == "win32"\n'
    )
    printed = json.loads(out)  # stdout is the SBOM alone
    assert [c["purl"] for c in printed["components"]] == ["pkg:pypi/demo-pkg@1.0"]
    assert "component" not in printed["metadata"]  # no root component without --pyproject
    venv = project / "venv"
    sbom.install_runtime(uv, [lock], venv, ["--no-index", "--find-links", str(project / "wheels")])
    no_uv = ["--root", str(project), "sbom", "--lock", "locks/runtime.txt"]  # --venv: no uv
    assert cli.main([*no_uv, "--venv", "venv", "--output", "out.json"]) == 0
    assert json.loads((project / "out.json").read_text(encoding="utf-8")) == printed
    # A pin that does apply but is not installed is still an error.
    lock.write_text(
        lock.read_text(encoding="utf-8") + "six==1.17.0 --hash=sha256:" + "d" * 64 + "\n",
        encoding="utf-8",
    )
    assert cli.main([*base, "--venv", "venv"]) == 1
    assert capsys.readouterr().err.endswith(
        "ci: error: locks/runtime.txt pins six for this environment but the SBOM has no such "
        "component\n"
    )


def test_sbom_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "l.txt").write_text("six==1.17.0 --hash=sha256:" + "d" * 64 + "\n", "utf-8")
    base = ["--root", str(tmp_path), "sbom", "--lock", "l.txt"]
    assert cli.main([*base, "--check"]) == 1
    assert capsys.readouterr().err == (
        "ci: error: --check needs --output FILE (the committed SBOM to compare)\n"
    )
    assert cli.main([*base, "--venv", "nowhere"]) == 1
    assert capsys.readouterr().err == (
        f"ci: error: {tmp_path}/nowhere: not a virtualenv (no bin/python)\n"
    )
    assert not list(tmp_path.glob("*.json"))
    with pytest.raises(GateError, match=r"uv is needed to build the throwaway venv \(or pass"):
        sbom.generate(tmp_path, None, [tmp_path / "l.txt"], None)


def test_applicable_pins_conflict_between_locks() -> None:
    a = parse_lock("six==1.17.0 --hash=sha256:" + "a" * 64 + "\n", "a.txt")
    b = parse_lock("six==1.16.0 --hash=sha256:" + "b" * 64 + "\n", "b.txt")
    with pytest.raises(GateError, match=r"six is pinned to 1.17.0 in a.txt:1 and to 1.16.0"):
        sbom.applicable_pins([("a.txt", a), ("b.txt", b)], {})


@pytest.mark.parametrize(
    ("name", "purl"),
    [
        ("jaraco.classes", "pkg:pypi/jaraco.classes@3.4.0"),
        ("Jinja2", "pkg:pypi/jinja2@3.4.0"),
        ("prometheus_client", "pkg:pypi/prometheus-client@3.4.0"),
    ],
)
def test_pypi_purls_follow_the_purl_spec(name: str, purl: str) -> None:
    assert sbom.pypi_purl(name, "3.4.0") == purl

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci import cli


def test_image_commands_pass_through(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["image", "--help"])
    assert exc.value.code == 0
    assert "python -m ci.image" in capsys.readouterr().out


def test_deploy_passes_through(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["deploy", "--help"])
    assert exc.value.code == 0
    assert "deploy" in capsys.readouterr().out


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in (
        "coverage-gate",
        "security-scan",
        "lock",
        "toolchain",
        "audit",
        "licenses",
        "sbom",
        "image",
        "advisories-update",
    ):
        assert command in out


def test_licenses_imports_only_what_it_uses() -> None:
    """`python -m ci licenses` (benchmarks/supply_chain/bench_peers.py times it against
    pip-licenses) loads neither the toolchain lock's machinery, the audit, the file writer
    nor hashlib (OpenSSL); the commands that use them import them."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus" / "flask"
    script = (
        "import runpy, sys\n"
        "sys.argv = ['ci', 'licenses', '--lock', sys.argv[1]]\n"
        "try:\n"
        "    runpy.run_module('ci', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(corpus / "requirements.txt")],
        capture_output=True,
        text=True,
        check=True,
        # without coverage's subprocess start-up, which would import what it uses
        env={k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE_", "COV_"))},
    )
    loaded = set(done.stdout.splitlines()[-1].split())
    assert "ci.supply_chain.licenses" in loaded  # the command ran
    unused = {
        "ci.gate.toolchain",
        "ci.supply_chain.advisories.audit",
        "ci.supply_chain.advisories.online",
        "ci.files",
        "hashlib",
    }
    assert loaded.isdisjoint(unused), sorted(loaded & unused)

from __future__ import annotations

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

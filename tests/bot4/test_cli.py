from __future__ import annotations

import pytest

from bot4 import __version__, cli
from bot4.errors import Bot4Error
from bot4.infrastructure import doctor


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"bot4 {__version__}"
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_errors_and_interrupts_become_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(_args: object) -> int:
        raise Bot4Error("the thing is wrong; fix it")

    def interrupted(_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(doctor, "run", boom)
    assert cli.main(["doctor"]) == 2
    assert capsys.readouterr().err == "bot4: error: the thing is wrong; fix it\n"
    monkeypatch.setattr(doctor, "run", interrupted)
    assert cli.main(["doctor"]) == 130
    assert capsys.readouterr().err == "bot4: interrupted\n"

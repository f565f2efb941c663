"""Settings are checked at start-up by every command, through the real ``bot4`` entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot4.infrastructure.errors import ConfigError
from bot4.infrastructure.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]
BOT4 = [sys.executable, "-m", "bot4"]


def bot4(
    args: list[str], env: dict[str, str], cwd: Path, script: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOT4_")}
    cmd = ["sh", "-c", script] if script is not None else [*BOT4, *args]
    return subprocess.run(
        cmd, env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def commands(tmp: Path) -> dict[str, list[str]]:
    """One harmless, otherwise valid invocation of every subcommand."""
    return {
        "doctor": ["doctor"],
        "simulate": [
            "simulate",
            str(ROOT / "examples/basic.toml"),
            "--orders",
            "5",
            "--out",
            str(tmp / "events.jsonl"),
        ],
        "run": [
            "run",
            str(ROOT / "examples/reverting.toml"),
            "--duration",
            "1",
            "--audit-log",
            str(tmp / "audit.jsonl"),
        ],
        "chaos": ["chaos", "partition", "--seconds", "1", "--report-dir", str(tmp / "chaos")],
        "audit": ["audit", "verify", str(tmp / "audit.jsonl")],
    }


BAD = [
    ("BOT4_TLS_CACHE_SIZE", "-5", "BOT4_TLS_CACHE_SIZE is no longer read"),
    ("BOT4_TLS_CACHE_SIZE", "abc", "BOT4_TLS_CACHE_SIZE is no longer read"),
    ("BOT4_METRICS_PORT", "abc", "BOT4_METRICS_PORT must be an integer port"),
    ("BOT4_SECRETS", "vault", "BOT4_SECRETS must be one of file, kms, pkcs11"),
    ("BOT4_FORCE_SCALAR", "maybe", "BOT4_FORCE_SCALAR must be one of"),
]


# Every command with the value, and every bad value with the command that writes a file
# (each case is a fresh interpreter, so the matrix is kept to what adds a new path).
CASES = [(command, *BAD[0]) for command in ("doctor", "simulate", "run", "chaos", "audit")]
CASES += [("simulate", *bad) for bad in BAD[1:]]


@pytest.mark.parametrize(("command", "name", "value", "message"), CASES)
def test_every_command_refuses_a_bad_setting_before_doing_anything(
    tmp_path: Path, command: str, name: str, value: str, message: str
) -> None:
    args = commands(tmp_path)[command]
    proc = bot4(args, {name: value}, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bot4: error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written: no event log, audit log, report


@pytest.mark.e2e
def test_the_printed_remedy_works_as_printed(tmp_path: Path) -> None:
    proc = bot4(["doctor"], {"BOT4_TLS_CACHE_SIZE": "-5"}, tmp_path)
    remedy = proc.stderr.rsplit("(", 1)[1].rstrip(")\n")
    assert remedy == "unset BOT4_TLS_CACHE_SIZE"
    if shutil.which("sh") is None:  # the shell-less engine image (image-tests declares sh)
        pytest.skip("the remedy is a shell command and sh is absent")
    script = f"{remedy}; {sys.executable} -m bot4 doctor"
    fixed = bot4([], {"BOT4_TLS_CACHE_SIZE": "-5"}, tmp_path, script=script)
    assert fixed.returncode == 0, fixed.stderr


def test_doctor_prints_the_effective_configuration(tmp_path: Path) -> None:
    proc = bot4(["doctor"], {"BOT4_METRICS_PORT": "9200", "BOT4_SECRETS_DIR": "/s"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "BOT4_METRICS_PORT    = 9200 (env)" in proc.stdout
    assert "BOT4_METRICS_ADDRESS = localhost (default)" in proc.stdout
    assert "BOT4_SECRETS_DIR     = /s (env)" in proc.stdout
    data = json.loads(bot4(["doctor", "--json"], {"BOT4_SECRETS": "kms"}, tmp_path).stdout)
    assert data["settings"]["BOT4_SECRETS"] == {"value": "kms", "source": "env"}
    assert data["settings"]["BOT4_FORCE_SCALAR"] == {"value": "false", "source": "default"}


def test_load_settings_reads_only_the_mapping_it_is_given() -> None:
    names = [s.name for s in load_settings({})]
    assert names == [
        "BOT4_FORCE_SCALAR",
        "BOT4_METRICS_ADDRESS",
        "BOT4_METRICS_PORT",
        "BOT4_SECRETS",
        "BOT4_SECRETS_DIR",
    ]
    with pytest.raises(ConfigError, match="BOT4_TLS_CACHE_SIZE"):
        load_settings({"BOT4_TLS_CACHE_SIZE": "128"})  # even a once-valid value

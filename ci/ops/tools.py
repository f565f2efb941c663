"""Running promtool/amtool: find the tool (naming its Debian package), run it, report."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.ops.layout import TOOLS, OpsError

# --- tools -----------------------------------------------------------------------------


def find_tool(name: str, path: str | None = None) -> str:
    """The executable ``name`` on ``path`` (default $PATH), or an error naming the package."""
    found = shutil.which(name, path=path)
    if found is None:
        package = TOOLS.get(name, name)
        raise OpsError(
            f"{name} not found on PATH: install Debian's {package} package "
            f"(apt-get install -y prometheus prometheus-alertmanager)"
        )
    return found


@dataclass(frozen=True)
class ToolResult:
    """A finished tool run: its exit status and what it printed."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """Whether it exited 0."""
        return self.returncode == 0

    @property
    def output(self) -> str:
        """stdout and stderr together, stripped."""
        return f"{self.stdout}\n{self.stderr}".strip()


def run_tool(argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 120) -> ToolResult:
    """Run a tool found by ``find_tool``; a tool that cannot start or hangs is an error."""
    try:
        proc = subprocess.run(  # noqa: S603 - argv from find_tool, no shell  # nosec B603
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OpsError(f"{Path(argv[0]).name} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise OpsError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    return ToolResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


def failed_lines(result: ToolResult, what: str) -> list[str]:
    if result.ok:
        return []
    return [f"{what}: {line}" for line in result.output.splitlines() if line.strip()] or [
        f"{what}: exited {result.returncode}"
    ]

"""The gate's closing summary: each failed session's one-line reason, after nox's own.

nox ends a run with ``* scan: failed`` and nothing more; the reason (the tool's one-line
``PROG: error: … — remedy``) is often pages up. ``scripts/gate`` runs nox under this
module, which passes nox's output through as it comes (nox's own lines to stderr, the
sessions' output to stdout, as nox writes them) and keeps, per session, the last line that
says ``error`` or pytest's ``FAILED`` (else the session's last line). When nox fails it adds::

    gate: 2 session(s) failed, each with its last error line:
    gate:   scan: python -m ci.image: error: … (remedy)
    gate:   lint: nox > Command ruff check … failed with exit code 1

and exits with nox's own code. Standard library only, run on the bare interpreter
(``python3 -I``) like ``preinstall.py``: nothing it uses comes from the locks.

Usage: ``python3 -I ci/gate/closing_summary.py NOX [ARG…]``; it exits with nox's code.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

# nox's colours (and any other SGR/cursor sequence) are not part of the text.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RUNNING = re.compile(r"nox > Running session (\S+)")
FAILED = re.compile(r"nox > Session (\S+) (?:failed|aborted)")
# A tool's one-line error ("PROG: error: …", "ERROR: …"), or pytest's "FAILED test - why".
ERROR = re.compile(r"(?:^|\s|:)(?:error|ERROR)\b|^FAILED ")
USAGE = "Usage: python3 -I ci/gate/closing_summary.py NOX [ARG…]  (scripts/gate runs it)"
# A reason longer than this is cut: the summary stays one line per session.
WIDTH = 400
# nox's lines about sessions rather than from them (its closing summary among them).
NOX_OWN = ("nox > Session ", "nox > Ran ", "nox > * ")
# Lines that go to stderr: nox's log and the noxfile's own messages; the rest is stdout.
NOX_PREFIXES = ("nox > ", "gate: ")
PREFIX_LENGTH = max(map(len, NOX_PREFIXES))


def _plain(raw: str) -> str:
    """A line without colours, carriage returns or surrounding blanks."""
    return ANSI.sub("", raw).replace("\r", "").strip()


@dataclass
class Sessions:
    """What the stream said about each session: its last error line, its last line of
    tool output, its last line from nox itself."""

    current: str | None = None
    last_error: dict[str, str] = field(default_factory=dict)
    last_output: dict[str, str] = field(default_factory=dict)
    last_nox: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def feed(self, raw: str) -> None:
        """Take one line of nox's output, in order."""
        line = _plain(raw)
        if not line:
            return
        if started := RUNNING.search(line):
            self.current = started.group(1)
            return
        if (ended := FAILED.search(line)) and ended.group(1) not in self.failed:
            self.failed.append(ended.group(1))
        if self.current is None or line.startswith(NOX_OWN):
            return
        if line.startswith("nox > "):  # nox's echo of a command is not the command's output
            self.last_nox[self.current] = line
            return
        self.last_output[self.current] = line
        if ERROR.search(line):
            self.last_error[self.current] = line

    def reason(self, name: str) -> str:
        """The session's last error line, else its last output line, else nox's last line
        (``Command … failed with exit code N``), at most WIDTH characters."""
        text = (
            self.last_error.get(name)
            or self.last_output.get(name)
            or self.last_nox.get(name)
            or "no output"
        )
        return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"

    def summary(self) -> list[str]:
        """The closing lines (none when no session failed)."""
        if not self.failed:
            return []
        lines = [f"gate: {len(self.failed)} session(s) failed, each with its last error line:"]
        return lines + [f"gate:   {name}: {self.reason(name)}" for name in self.failed]


class Router:
    """nox's stdout and stderr, read from one pipe (so in the order nox wrote them), and
    written back to ours: nox's own lines (``nox > …``) and the gate's (``gate: …``) to
    stderr, as nox and the noxfile write them, the rest (the sessions' output) to stdout.

    A line's stream is chosen from its first characters and the rest of it passed on as
    it comes: a progress line shows before its newline.
    """

    def __init__(self, out: BinaryIO, err: BinaryIO) -> None:
        self.targets: dict[bool, BinaryIO | None] = {False: out, True: err}
        self.line = b""  # the line so far, for the parser
        self.undecided = b""  # its start, held until its stream is known
        self.to_err: bool | None = None

    def _write(self, data: bytes, to_err: bool) -> None:
        target = self.targets[to_err]
        if target is None or not data:
            return
        try:
            target.write(data)
            target.flush()
        except BrokenPipeError:  # `scripts/gate | head`: stop copying there, not nox
            # and let the interpreter's own flush at exit go nowhere (not exit 120)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, target.fileno())
            os.close(devnull)
            self.targets[to_err] = None

    def _pass(self, piece: bytes, complete: bool) -> None:
        if self.to_err is None:
            self.undecided += piece
            plain = ANSI.sub("", self.undecided.decode("utf-8", "replace"))
            if not complete and len(plain) < PREFIX_LENGTH:
                return
            self.to_err = plain.startswith(NOX_PREFIXES)
            piece, self.undecided = self.undecided, b""
        self._write(piece, self.to_err)

    def take(self, chunk: bytes) -> list[str]:
        """Pass CHUNK on; the lines it completes (at EOF, b"": the last partial one)."""
        done = []
        if not chunk:
            if self.line:
                self._pass(b"", complete=True)
                done.append(self.line.decode("utf-8", "replace"))
            self.line, self.to_err = b"", None
            return done
        parts = chunk.split(b"\n")
        for i, part in enumerate(parts):
            complete = i < len(parts) - 1
            piece = part + b"\n" if complete else part
            if not piece:
                continue
            self.line += piece
            self._pass(piece, complete)
            if complete:
                done.append(self.line.decode("utf-8", "replace"))
                self.line, self.to_err = b"", None
        return done


def run(argv: Sequence[str]) -> int:
    """Run ARGV (nox), pass its output through, then the failed sessions' reasons."""
    # Ctrl-C reaches nox too (same process group): let nox stop its sessions and report.
    interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return _run(argv)
    finally:
        signal.signal(signal.SIGINT, interrupt)


def _run(argv: Sequence[str]) -> int:
    try:
        process = subprocess.Popen(  # noqa: S603  # nosec B603 - the gate's own nox
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # nox's stdout is block-buffered in a pipe: unbuffered, its lines and its
            # sessions' output reach the one pipe in the order they happened.
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    except OSError as exc:
        print(f"gate: error: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 2
    sessions = Sessions()
    router = Router(sys.stdout.buffer, sys.stderr.buffer)
    with process:
        assert process.stdout is not None  # noqa: S101  # nosec B101 - stdout=PIPE above
        fd = process.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            for line in router.take(chunk):
                sessions.feed(line)
            if not chunk:
                break
        code = process.wait()
    if code != 0:
        for line in sessions.summary():
            print(line, file=sys.stderr, flush=True)
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())

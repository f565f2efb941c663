"""The pinned actions' real code, vendored for act (``nox -s act``): checked, then unpacked.

GitHub is out of reach when the jobs run, so the files an action runs (its ``action.yml`` and
``dist/`` bundles) are kept here as one xz tarball per action, taken from the action's public
repository at exactly the pinned commit. ``actions.json`` records, per action, the commit and
tag, the tarball's sha256 and each file's sha256 and git blob id (the id in the upstream tree
at that commit, so anyone with a clone can match it: ``git ls-tree -r COMMIT``). Nothing is
unpacked before the tarball's hash matches, only the listed regular files come out, and
none is written until every one has matched (a refusal leaves no half-unpacked action).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ci.workflows.checks import PIN_RE, SHA_RE, WorkflowError

VENDORED = Path(__file__).resolve().parent / "vendored-actions"
MANIFEST = "actions.json"
# Placeholders: a clone of the action, the pin the workflows name, the files the manifest
# lists for it (tests/ci/test_remedies.py fills them in and runs it as printed).
REMEDY = "scripts/gate -s vendor -- --git-dir CLONE OWNER/REPO@SHA FILE…"


@dataclass(frozen=True)
class Vendored:
    """One vendored action: its pin, tarball and the files it must unpack to."""

    action: str
    commit: str
    tag: str
    archive: Path
    archive_sha256: str
    files: dict[str, tuple[str, str]]  # path -> (sha256, git blob id)

    @property
    def pin(self) -> str:
        """owner/repo@SHA, as the workflows write it."""
        return f"{self.action}@{self.commit}"


def git_blob_id(data: bytes) -> str:
    """The id git gives DATA as a blob (sha1 of ``blob <size>\\0`` + data)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(directory: Path = VENDORED) -> dict[str, Vendored]:
    """The vendored actions by owner/repo, from DIRECTORY/actions.json."""
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise WorkflowError(f"cannot read {path}: {exc}") from None
    try:
        return {
            action: Vendored(
                _owner_repo(action),
                str(entry["commit"]),
                str(entry["tag"]),
                directory / PurePosixPath(str(entry["archive"])).name,
                str(entry["archive-sha256"]),
                {
                    str(name): (str(f["sha256"]), str(f["git-blob"]))
                    for name, f in dict(entry["files"]).items()
                },
            )
            for action, entry in dict(data["actions"]).items()
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        raise WorkflowError(f"{path}: malformed manifest; regenerate it with {REMEDY}") from None


def _is_owner_repo(action: str) -> bool:
    """OWNER/REPO, no more, no less: it names the directory the action unpacks to."""
    parts = action.split("/")
    return len(parts) == 2 and all(re.fullmatch(r"[\w.-]+", p) and p.strip(".") for p in parts)


def _owner_repo(action: str) -> str:
    """A manifest key, if it is OWNER/REPO (else ValueError: a malformed manifest)."""
    if not _is_owner_repo(action):
        raise ValueError(f"not OWNER/REPO: {action!r}")
    return action


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or ".." in path.parts or "" in path.parts:
        raise WorkflowError(f"vendored file name {name!r} is not a plain relative path")
    return path


def unpack(entry: Vendored, dest: Path) -> Path:
    """Check ENTRY's tarball and unpack exactly its listed files into DEST (created)."""
    try:
        blob = entry.archive.read_bytes()
    except OSError as exc:
        raise WorkflowError(f"cannot read {entry.archive}: {exc.strerror}") from None
    if _sha256(blob) != entry.archive_sha256:
        raise WorkflowError(
            f"{entry.archive.name}: sha256 {_sha256(blob)} is not the recorded "
            f"{entry.archive_sha256}; the vendored {entry.action} was altered"
        )
    seen: set[str] = set()
    checked: list[tuple[PurePosixPath, bytes]] = []  # written only once every member passed
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:xz") as tar:
            for member in tar:
                name = member.name
                if name not in entry.files or name in seen or not member.isreg():
                    raise WorkflowError(
                        f"{entry.archive.name}: unexpected member {name!r}; "
                        f"the vendored {entry.action} was altered"
                    )
                seen.add(name)
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                sha256, blob_id = entry.files[name]
                if _sha256(data) != sha256 or git_blob_id(data) != blob_id:
                    raise WorkflowError(
                        f"{entry.archive.name}: {name} does not match its recorded sha256 "
                        f"and git blob id; the vendored {entry.action} was altered"
                    )
                checked.append((_safe_name(name), data))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise WorkflowError(f"{entry.archive.name}: not a readable xz tarball ({exc})") from None
    missing = sorted(set(entry.files) - seen)
    if missing:
        raise WorkflowError(f"{entry.archive.name}: missing {', '.join(missing)}")
    try:
        dest.mkdir(parents=True)
        for name_path, data in checked:
            target = dest.joinpath(*name_path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    except OSError as exc:
        raise WorkflowError(f"cannot unpack {entry.action} into {dest}: {exc.strerror}") from None
    return dest


def _git(git_dir: Path, *args: str) -> bytes:
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603 B607
            ["git", f"--git-dir={git_dir}", *args],  # noqa: S607
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise WorkflowError(f"cannot run git: {exc.strerror}") from None
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise WorkflowError(f"git {' '.join(args)}: {detail}")
    return result.stdout


def vendor(git_dir: Path, pin: str, names: Sequence[str], directory: Path = VENDORED) -> Vendored:
    """Take NAMES from the action's clone at the pinned commit; write the tarball, record it."""
    match = PIN_RE.fullmatch(pin)
    if match is None or not SHA_RE.fullmatch(match["ref"]) or not _is_owner_repo(match["action"]):
        raise WorkflowError(f"expected OWNER/REPO@<40 hex>, got {pin!r}")
    action, commit = match["action"], match["ref"]
    if (git_dir / ".git").is_dir():  # an ordinary clone (git clone URL), not a bare mirror
        git_dir = git_dir / ".git"
    tags = _git(git_dir, "tag", "--points-at", commit).decode().split()
    tag = max((t for t in tags if t.count(".") == 2), key=len, default=",".join(tags) or "none")
    files: dict[str, tuple[str, str]] = {}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(set(names)):
            _safe_name(name)
            data = _git(git_dir, "cat-file", "blob", f"{commit}:{name}")
            listed = _git(git_dir, "rev-parse", f"{commit}:{name}").decode().strip()
            if git_blob_id(data) != listed:
                raise WorkflowError(f"{name} at {commit}: the clone's blob does not match its id")
            files[name] = (_sha256(data), listed)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    archive = directory / f"{action.replace('/', '+')}.tar.xz"
    directory.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(buffer.getvalue())
    path = directory / MANIFEST
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"actions": {}}
    data["actions"][action] = {
        "origin": f"https://github.com/{action}",
        "commit": commit,
        "tag": tag,
        "archive": archive.name,
        "archive-sha256": _sha256(buffer.getvalue()),
        "files": {n: {"sha256": s, "git-blob": b} for n, (s, b) in sorted(files.items())},
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return load(directory)[action]

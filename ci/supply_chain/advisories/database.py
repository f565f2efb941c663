"""The offline advisory database: loading OSV records, and building the committed snapshot.

A database is a directory or a zip of OSV records (``.json``, ``.yaml``, ``.yml``). The
repository carries a snapshot of the PyPA advisory database (CC-BY-4.0) in
``ci/advisories/``: a byte-stable zip of the upstream records, unmodified, with
``SNAPSHOT.toml`` (source, commit, date, record count, sha256 of the zip), the licence
text and an attribution notice beside it. ``python -m ci advisories-update --from
<clone, bare git dir, directory or zip>`` rebuilds it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import subprocess
import tarfile
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from packaging.utils import NormalizedName

from ci.compat import tomllib
from ci.errors import GateError
from ci.files import atomic_write
from ci.supply_chain.advisories.osv import Advisory, MalformedRecordError, parse_record

log = logging.getLogger(__name__)

RECORD_SUFFIXES = (".json", ".yaml", ".yml")
SNAPSHOT_META = "SNAPSHOT.toml"
SNAPSHOT_ZIP = "pypa-advisory-db.zip"
UPSTREAM = "https://github.com/pypa/advisory-database"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Snapshot:
    """What SNAPSHOT.toml records about a committed snapshot."""

    source: str
    commit: str
    date: dt.date
    records: int
    archive: str
    sha256: str


@dataclass(frozen=True)
class Database:
    """Loaded advisories, indexed by canonical package name, and what was skipped."""

    source: str
    by_name: Mapping[NormalizedName, tuple[Advisory, ...]]
    records: int
    withdrawn: int
    warnings: tuple[str, ...]
    date: dt.date | None
    snapshot: Snapshot | None

    def for_package(self, name: NormalizedName) -> tuple[Advisory, ...]:
        """The advisories that name ``name`` in an affected entry."""
        return self.by_name.get(name, ())


def decode(name: str, data: bytes) -> object:
    """Decode one record by its suffix; errors become MalformedRecordError naming the file."""
    try:
        text = data.decode("utf-8")
        if name.endswith(".json"):
            return json.loads(text)
        # CSafeLoader/SafeLoader: the safe loaders, in their fast C form when available.
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506  # nosec B506
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MalformedRecordError(f"{name}: cannot decode: {first}") from None


def iter_records(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of every record file in a directory (recursively) or a zip."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file() and file.name.endswith(RECORD_SUFFIXES):
                yield str(file.relative_to(path)), file.read_bytes()
        return
    if not path.exists():
        raise GateError(f"{path}: advisory database not found (give --db or BOT4_ADVISORY_DB)")
    try:
        with zipfile.ZipFile(path) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if not info.is_dir() and info.filename.endswith(RECORD_SUFFIXES):
                    yield info.filename, archive.read(info)
    except zipfile.BadZipFile:
        raise GateError(f"{path}: not a directory or a zip of OSV records") from None


def _modified(data: object) -> dt.date | None:
    if not isinstance(data, dict):
        return None
    raw = data.get("modified")
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, str):
        try:
            return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).date()
        except ValueError:
            return None
    return None


# A record's `modified` (UTC) may fall on the day after its commit's local date.
_DATE_SLACK = dt.timedelta(days=1)


def _future_record(source: str, modified: dt.date, limit: dt.date, what: str) -> GateError:
    return GateError(
        f"{source}: record modified {modified}, after {what} {limit} — a record dated in the "
        "future is refused; rebuild from a git clone: "
        "scripts/gate -s advisories-update -- --from CLONE"
    )


def load_db(path: Path, today: dt.date | None = None) -> Database:
    """Load every record; a malformed one is skipped with a warning naming its file.

    The database's date is its SNAPSHOT.toml's (the source commit's), never a record's
    ``modified``: one record dated 2099 must not make a stale snapshot look fresh. A
    record modified after that date (or after ``today`` without metadata) is an error.
    """
    snapshot = read_snapshot_meta(path)
    now = today or dt.datetime.now(dt.timezone.utc).date()
    limit = snapshot.date if snapshot is not None else now
    what = "the snapshot's source commit of" if snapshot is not None else "today,"
    by_name: dict[NormalizedName, list[Advisory]] = defaultdict(list)
    warnings: list[str] = []
    records = withdrawn = 0
    for name, data in iter_records(path):
        source = f"{path}:{name}"
        try:
            decoded = decode(source, data)
            advisory = parse_record(decoded, source)
        except MalformedRecordError as exc:
            warnings.append(f"skipped malformed advisory record {exc}")
            continue
        records += 1
        modified = _modified(decoded)
        if modified is not None and modified > limit + _DATE_SLACK:
            raise _future_record(source, modified, limit, what)
        if advisory.withdrawn is not None:
            withdrawn += 1
            continue
        for name_ in {a.name for a in advisory.affected}:
            by_name[name_].append(advisory)
    if snapshot is not None:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != snapshot.sha256:
            raise GateError(
                f"{path}: sha256 differs from {SNAPSHOT_META} (edited by hand?); restore the "
                "committed copy or rebuild it with "
                "scripts/gate -s advisories-update -- --from CLONE"
            )
    return Database(
        source=str(path),
        by_name={k: tuple(v) for k, v in by_name.items()},
        records=records,
        withdrawn=withdrawn,
        warnings=tuple(warnings),
        date=snapshot.date if snapshot is not None else None,
        snapshot=snapshot,
    )


def read_snapshot_meta(db: Path) -> Snapshot | None:
    """SNAPSHOT.toml beside a snapshot zip that it describes, else None."""
    meta = db.parent / SNAPSHOT_META
    if db.is_dir() or not meta.is_file():
        return None
    try:
        data = tomllib.loads(meta.read_text(encoding="utf-8"))
        if data.get("archive") != db.name:
            return None
        return Snapshot(
            source=str(data["source"]),
            commit=str(data["commit"]),
            date=data["date"]
            if isinstance(data["date"], dt.date)
            else dt.date.fromisoformat(data["date"]),
            records=int(data["records"]),
            archive=str(data["archive"]),
            sha256=str(data["sha256"]),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise GateError(f"{meta}: malformed snapshot metadata ({exc}); rebuild it") from None


def age_warning(db: Database, today: dt.date, max_age_days: int) -> str | None:
    """A warning when the database is older than ``max_age_days`` (or has no date)."""
    if db.date is None:
        return f"advisory DB {db.source} has no date; cannot tell how stale it is"
    age = (today - db.date).days
    if age > max_age_days:
        return (
            f"advisory DB snapshot is {age} days old (from {db.date}, limit {max_age_days}); "
            "refresh it with scripts/gate -s advisories-update -- --from <clone of "
            f"{UPSTREAM}>"
        )
    return None


# --- building the snapshot ------------------------------------------------------------


@dataclass(frozen=True)
class SourceTree:
    """Record files and licence text read from an upstream copy of the database."""

    files: tuple[tuple[str, bytes], ...]
    license_text: str
    commit: str
    date: dt.date | None


def _git(args: list[str]) -> bytes:
    try:
        return subprocess.run(  # noqa: S603  # nosec B603 B607
            ["git", *args],  # noqa: S607 - git from PATH, like the other ci commands
            check=True,
            capture_output=True,
            timeout=300,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise GateError(f"git {' '.join(args[:3])} failed: {exc}") from None


def _is_git_dir(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def _vuln_name(rel: str) -> str | None:
    """``vulns/<pkg>/<ID>.<ext>`` (at any depth under a top folder) or None."""
    parts = PurePosixPath(rel).parts
    if "vulns" not in parts or not rel.endswith(RECORD_SUFFIXES):
        return None
    return "/".join(parts[parts.index("vulns") :])


def _from_git(git_dir: Path) -> SourceTree:
    head = _git(["--git-dir", str(git_dir), "log", "-1", "--format=%H %cI", "HEAD"])
    commit, _, when = head.decode().strip().partition(" ")
    tar_bytes = _git(
        ["--git-dir", str(git_dir), "archive", "--format=tar", "HEAD", "vulns", "LICENSE"]
    )
    files: list[tuple[str, bytes]] = []
    license_text = ""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is None:
                continue
            data = extracted.read()
            if member.name == "LICENSE":
                license_text = data.decode("utf-8")
            elif (rel := _vuln_name(member.name)) is not None:
                files.append((rel, data))
    return SourceTree(tuple(files), license_text, commit, dt.datetime.fromisoformat(when).date())


def _from_plain(path: Path) -> SourceTree:
    files: list[tuple[str, bytes]] = []
    license_text = ""
    if path.is_dir():
        for file in path.rglob("*"):
            rel = str(file.relative_to(path))
            if file.is_file() and (name := _vuln_name(rel)) is not None:
                files.append((name, file.read_bytes()))
        license_file = next(
            iter(sorted(path.glob("LICENSE")) + sorted(path.glob("*/LICENSE"))), None
        )
        if license_file is not None:
            license_text = license_file.read_text(encoding="utf-8")
    else:
        for rel, data in _zip_members(path):
            if PurePosixPath(rel).name == "LICENSE" and rel.count("/") <= 1:
                license_text = data.decode("utf-8")
            elif (name := _vuln_name(rel)) is not None:
                files.append((name, data))
    return SourceTree(tuple(files), license_text, "unknown", None)


def _zip_members(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield info.filename, archive.read(info)
    except (FileNotFoundError, zipfile.BadZipFile):
        raise GateError(
            f"{path}: not a clone, git directory, directory or zip of the database"
        ) from None


def read_source(path: Path) -> SourceTree:
    """Read an upstream copy: a bare git dir, a clone (git work tree), a directory or a zip."""
    if _is_git_dir(path):
        return _from_git(path)
    if (path / ".git").exists():
        return _from_git(path / ".git") if _is_git_dir(path / ".git") else _from_plain(path)
    return _from_plain(path)


def build_zip(files: Iterable[tuple[str, bytes]]) -> bytes:
    """A byte-stable zip: sorted names, fixed timestamps and permissions, max deflate."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


NOTICE = """\
# Advisory database snapshot

`{archive}` holds the OSV records of the PyPA advisory database, unmodified:

- source: {source}
- commit: `{commit}`
- date of that commit: {date}
- records: {records}

The PyPA advisory database is licensed under the Creative Commons Attribution 4.0
International licence (CC-BY-4.0); its text is in `LICENSE` here. Attribution: "PyPA
advisory database, © the Python Packaging Authority and contributors, {source}".

Rebuild with `scripts/gate -s advisories-update -- --from <clone, git dir, directory or zip>`
(or `python -m ci advisories-update --from …` in a session venv). `SNAPSHOT.toml`
records the zip's sha256; the audit refuses a zip that does not match it.
"""


def update_snapshot(
    source: Path, out_dir: Path, date: dt.date | None = None, commit: str | None = None
) -> tuple[Snapshot, tuple[str, ...]]:
    """Build ``out_dir``'s snapshot from an upstream copy; returns it and record warnings.

    Its date is the source commit's: from git for a clone, else ``date`` (the upstream
    commit a plain directory or zip was taken from) — never a record's ``modified``.
    """
    tree = read_source(source)
    if tree.date is None and date is not None:
        tree = SourceTree(tree.files, tree.license_text, commit or tree.commit, date)
    if not tree.files:
        raise GateError(f"{source}: no vulns/**/*.yaml|json records found")
    if not tree.license_text.strip():
        raise GateError(f"{source}: no LICENSE found; the snapshot must carry its CC-BY-4.0 text")
    if tree.date is None:
        raise GateError(
            f"{source}: cannot date the snapshot (a plain directory or zip has no commit date); "
            "pass a git clone, or --date YYYY-MM-DD (and --commit SHA) of the upstream commit"
        )
    warnings: list[str] = []
    for name, data in tree.files:
        try:
            decoded = decode(name, data)
            parse_record(decoded, name)
        except MalformedRecordError as exc:
            warnings.append(f"malformed upstream record kept as is: {exc}")
            continue
        modified = _modified(decoded)
        if modified is not None and modified > tree.date + _DATE_SLACK:
            raise _future_record(f"{source}:{name}", modified, tree.date, "the source commit of")
    blob = build_zip(tree.files)
    snapshot = Snapshot(
        source=UPSTREAM,
        commit=tree.commit,
        date=tree.date,
        records=len(tree.files),
        archive=SNAPSHOT_ZIP,
        sha256=hashlib.sha256(blob).hexdigest(),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{SNAPSHOT_ZIP}.tmp"
    tmp.write_bytes(blob)
    tmp.replace(out_dir / SNAPSHOT_ZIP)
    atomic_write(out_dir / "LICENSE", tree.license_text)
    atomic_write(out_dir / "NOTICE.md", NOTICE.format(**snapshot.__dict__))
    atomic_write(
        out_dir / SNAPSHOT_META,
        "# Written by python -m ci advisories-update; do not edit (the audit checks sha256).\n"
        f'source = "{snapshot.source}"\n'
        f'commit = "{snapshot.commit}"\n'
        f"date = {snapshot.date.isoformat()}\n"
        f"records = {snapshot.records}\n"
        f'archive = "{snapshot.archive}"\n'
        f'sha256 = "{snapshot.sha256}"\n'
        'license = "CC-BY-4.0"\n',
    )
    return snapshot, tuple(warnings)

"""The vendored real actions: they match the pins, and nothing altered is ever unpacked."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ci.workflows import act, cli, vendored
from ci.workflows.checks import WorkflowError

ROOT = Path(__file__).resolve().parents[3]


def _copy(tmp_path: Path) -> dict[str, vendored.Vendored]:
    shutil.copytree(vendored.VENDORED, tmp_path / "v")
    return vendored.load(tmp_path / "v")


def test_the_vendored_actions_are_the_pinned_ones_and_unpack_intact(tmp_path: Path) -> None:
    entries = vendored.load()
    assert set(entries) == {"actions/setup-python", "actions/cache"}
    pins = {
        pin
        for workflow, ids in [("ci.yml", ["toolchain", "tests", "toolkit-pythons"])]
        for job in act.plan(ROOT, workflow, ids)
        for pin in job.pins
    }
    for entry in entries.values():
        assert entry.pin in pins  # exactly the SHA the workflows pin
        assert act.action_for(entry.pin) == entry
        dest = vendored.unpack(entry, tmp_path / entry.action)
        names = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        assert names == sorted(entry.files)
        assert "LICENSE" in names  # MIT: the notice travels with the code
        action = (dest / "action.yml").read_text(encoding="utf-8")
        assert "using: 'node24'" in action


def test_a_tampered_archive_is_refused_before_anything_is_unpacked(tmp_path: Path) -> None:
    entry = _copy(tmp_path)["actions/cache"]
    data = bytearray(entry.archive.read_bytes())
    data[len(data) // 2] ^= 1
    entry.archive.write_bytes(bytes(data))
    with pytest.raises(WorkflowError, match=r"sha256 \w+ is not the recorded .* was altered"):
        vendored.unpack(entry, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _rewrite(tmp_path: Path, members: dict[str, bytes]) -> vendored.Vendored:
    """An archive with MEMBERS whose recorded archive hash was updated too (a forger who
    can edit the manifest's tarball hash but not the per-file hashes)."""
    directory = tmp_path / "v"
    entry = _copy(tmp_path)["actions/cache"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    entry.archive.write_bytes(buffer.getvalue())
    manifest = json.loads((directory / vendored.MANIFEST).read_text(encoding="utf-8"))
    manifest["actions"]["actions/cache"]["archive-sha256"] = vendored._sha256(buffer.getvalue())
    (directory / vendored.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return vendored.load(directory)["actions/cache"]


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../escape.js": b"x"}, "unexpected member '../escape.js'"),
        ({"action.yml": b"runs: {using: composite, steps: []}\n"}, "action.yml does not match"),
        ({"dist/extra.js": b"x"}, "unexpected member .dist/extra.js."),
    ],
)
def test_an_unlisted_or_altered_member_is_refused(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    entry = _rewrite(tmp_path, members)
    with pytest.raises(WorkflowError, match=message):
        vendored.unpack(entry, tmp_path / "out")
    assert not (tmp_path / "escape.js").exists()
    assert not (tmp_path / "out" / "action.yml").exists()


def test_a_missing_member_is_refused(tmp_path: Path) -> None:
    original = vendored.load()["actions/cache"]
    with tarfile.open(original.archive, mode="r:xz") as tar:
        handle = tar.extractfile("LICENSE")
        assert handle is not None
        entry = _rewrite(tmp_path, {"LICENSE": handle.read()})
    with pytest.raises(WorkflowError, match=r"missing action\.yml, dist/restore/index\.js"):
        vendored.unpack(entry, tmp_path / "out")


def _action_repo(path: Path) -> str:
    (path / "dist").mkdir(parents=True)
    (path / "action.yml").write_text("runs: {using: node24, main: dist/i.js}\n", encoding="utf-8")
    (path / "dist" / "i.js").write_text("console.log(1)\n", encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "t"]):
        subprocess.run([*git, *argv], cwd=path, check=True)
    subprocess.run([*git, "tag", "v1.2.3"], cwd=path, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=path, check=True, capture_output=True, text=True
    )
    return head.stdout.strip()


def test_vendor_from_a_clone_is_byte_stable_and_unpacks(tmp_path: Path) -> None:
    commit = _action_repo(tmp_path / "src")
    pin = f"o/a@{commit}"
    git_dir = tmp_path / "src" / ".git"
    first = vendored.vendor(git_dir, pin, ["dist/i.js", "action.yml"], tmp_path / "v")
    archive = first.archive.read_bytes()
    # the work tree of an ordinary clone, as the printed remedy's CLONE, gives the same
    again = vendored.vendor(tmp_path / "src", pin, ["action.yml", "dist/i.js"], tmp_path / "v")
    assert again == first
    assert again.archive.read_bytes() == archive
    assert first.tag == "v1.2.3"
    out = vendored.unpack(first, tmp_path / "out")
    assert (out / "dist" / "i.js").read_text(encoding="utf-8") == "console.log(1)\n"


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        ("o/a@main", "expected OWNER/REPO@<40 hex>"),
        ("o/a/sub@" + "0" * 40, "expected OWNER/REPO@<40 hex>"),
        ("../..@" + "0" * 40, "expected OWNER/REPO@<40 hex>"),  # the directory it names
        ("o/a@" + "0" * 40, "git "),  # a commit the clone does not have
    ],
)
def test_vendor_refuses_a_bad_pin_in_one_line(
    tmp_path: Path, pin: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _action_repo(tmp_path / "src")
    argv = ["vendor", "--git-dir", str(tmp_path / "src" / ".git"), pin, "action.yml"]
    assert cli.main(["--root", str(tmp_path), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not vendored.VENDORED.joinpath("o+a.tar.xz").exists()


def test_the_tool_cache_holds_the_runner_interpreters_in_githubs_layout(tmp_path: Path) -> None:
    name = f"python3.{sys.version_info.minor}"
    search = tmp_path / "bin"
    search.mkdir()
    (search / name).symlink_to(sys.executable)
    seeded = act.seed_tool_cache(tmp_path / "tc", [search])
    version = ".".join(map(str, sys.version_info[:3]))
    assert seeded == [version]
    x64 = tmp_path / "tc" / "Python" / version / "x64"
    assert (x64.parent / "x64.complete").is_file()
    for link in (name, "python3", "python"):
        probe = subprocess.run(
            [str(x64 / "bin" / link), "-c", "import platform; print(platform.python_version())"],
            check=True,
            capture_output=True,
            text=True,
        )
        assert probe.stdout.strip() == version


def _pyenv(tmp_path: Path, *names: str) -> Path:
    """A pyenv versions directory whose installs' python3.N is this real interpreter; each
    install's lib/ holds a file naming it, so a test can tell which one was copied."""
    versions = tmp_path / "pyenv" / "versions"
    for name in names:
        (versions / name / "bin").mkdir(parents=True)
        (versions / name / "lib").mkdir()
        (versions / name / "lib" / "install").write_text(name, encoding="utf-8")
        (versions / name / "bin" / f"python3.{sys.version_info.minor}").symlink_to(sys.executable)
    return versions


def test_a_wanted_interpreter_not_on_the_path_is_copied_from_pyenv(tmp_path: Path) -> None:
    # toolkit-pythons asks setup-python for 3.10/3.12/3.13: not on the runner's PATH, so
    # setup-python went to the network for its manifest and the job failed under act
    want = f"3.{sys.version_info.minor}"
    versions = _pyenv(tmp_path, f"{want}.0", f"{want}.12", f"{want}.3", f"{want}.15t")
    seeded = act.seed_tool_cache(tmp_path / "tc", [], wanted=[want], pyenv_root=versions.parent)
    version = ".".join(map(str, sys.version_info[:3]))  # what the copied interpreter reports
    assert seeded == [version]
    x64 = tmp_path / "tc" / "Python" / version / "x64"
    # the newest patch; a free-threaded build (3.X.Yt, here the highest number) is not it
    assert (x64 / "lib" / "install").read_text(encoding="utf-8") == f"{want}.12"
    assert (x64.parent / "x64.complete").is_file()
    assert (x64 / "lib").is_dir()  # a copy of the install: setup-python's LD_LIBRARY_PATH
    assert not x64.is_symlink() and (x64 / "bin" / f"python3.{sys.version_info.minor}").exists()


def test_the_tool_cache_names_a_pyenv_copy_by_the_version_it_reports(tmp_path: Path) -> None:
    # setup-python resolves a version by the directory's name: a pyenv directory whose name
    # is not its interpreter's version (renamed, or re-pointed) must not mislabel the copy
    want = f"3.{sys.version_info.minor}"
    reported = ".".join(map(str, sys.version_info[:3]))
    versions = _pyenv(tmp_path, f"{want}.99")
    seeded = act.seed_tool_cache(tmp_path / "tc", [], wanted=[want], pyenv_root=versions.parent)
    assert seeded == [reported] and reported != f"{want}.99"
    assert [p.name for p in (tmp_path / "tc" / "Python").iterdir()] == [reported]
    assert (tmp_path / "tc" / "Python" / reported / "x64.complete").is_file()


def test_a_pyenv_install_that_does_not_run_is_passed_over(tmp_path: Path) -> None:
    want = f"3.{sys.version_info.minor}"
    versions = _pyenv(tmp_path, f"{want}.1", f"{want}.2")
    broken = versions / f"{want}.2" / "bin" / f"python{want}"
    broken.unlink()
    broken.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    broken.chmod(0o755)
    seeded = act.seed_tool_cache(tmp_path / "tc", [], wanted=[want], pyenv_root=versions.parent)
    copied = tmp_path / "tc" / "Python" / seeded[0] / "x64" / "lib" / "install"
    assert copied.read_text(encoding="utf-8") == f"{want}.1"


def test_a_wanted_interpreter_already_on_the_path_is_not_copied(tmp_path: Path) -> None:
    name = f"python3.{sys.version_info.minor}"
    search = tmp_path / "bin"
    search.mkdir()
    (search / name).symlink_to(sys.executable)
    want = f"3.{sys.version_info.minor}"
    versions = _pyenv(tmp_path, f"{want}.99")
    seeded = act.seed_tool_cache(
        tmp_path / "tc", [search], wanted=[want], pyenv_root=versions.parent
    )
    assert seeded == [".".join(map(str, sys.version_info[:3]))]


def test_a_wanted_interpreter_nowhere_is_refused_with_its_remedy(tmp_path: Path) -> None:
    versions = _pyenv(tmp_path)
    with pytest.raises(WorkflowError) as refused:
        act.seed_tool_cache(tmp_path / "tc", [], wanted=["3.99"], pyenv_root=versions.parent)
    assert str(refused.value) == (
        f"a job asks setup-python for Python 3.99: not on the runner's PATH and not under "
        f"{versions}; install it (pyenv install 3.99)"
    )


def test_the_jobs_extra_interpreters_are_read_from_the_workflow() -> None:
    (job,) = act.plan(ROOT, "ci.yml", ["toolkit-pythons"])
    assert job.pythons == {"3.10", "3.12", "3.13"}
    (lint,) = act.plan(ROOT, "ci.yml", ["lint"])
    assert lint.pythons == frozenset()


def test_host_jobs_with_javascript_actions_need_the_runners_node(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="not on its PATH: apt-get install nodejs"):
        act.require_node([tmp_path])
    (tmp_path / "node").write_text("", encoding="utf-8")
    assert act.require_node([tmp_path]) == tmp_path / "node"


def test_a_member_altered_after_genuine_ones_leaves_nothing_unpacked(tmp_path: Path) -> None:
    # members were written as they passed: a genuine LICENSE came out before the altered
    # action.yml was refused, leaving a half-unpacked action behind
    original = vendored.load()["actions/cache"]
    with tarfile.open(original.archive, mode="r:xz") as tar:
        handle = tar.extractfile("LICENSE")
        assert handle is not None
        genuine = handle.read()
    entry = _rewrite(tmp_path, {"LICENSE": genuine, "action.yml": b"runs: {using: node24}\n"})
    with pytest.raises(WorkflowError, match=r"action\.yml does not match"):
        vendored.unpack(entry, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unpacking_over_an_existing_directory_is_one_line(tmp_path: Path) -> None:
    entry = _copy(tmp_path)["actions/cache"]
    (tmp_path / "out").mkdir()
    with pytest.raises(WorkflowError, match=r"^cannot unpack actions/cache into .*: File exists$"):
        vendored.unpack(entry, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("key", ["actions/../../escape", "../..", "actions", "a/b/c", "./x"])
def test_a_manifest_key_that_is_not_owner_repo_is_refused(tmp_path: Path, key: str) -> None:
    # the key names the directory the action unpacks to (act: WORK/actions/OWNER/REPO)
    directory = tmp_path / "v"
    _copy(tmp_path)
    manifest = json.loads((directory / vendored.MANIFEST).read_text(encoding="utf-8"))
    manifest["actions"][key] = manifest["actions"].pop("actions/cache")
    (directory / vendored.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(
        WorkflowError, match=r"malformed manifest; regenerate it with scripts/gate -s vendor "
    ):
        vendored.load(directory)

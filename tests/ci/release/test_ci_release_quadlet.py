"""The shipped Quadlet file: our refusals (through ``python -m ci.release quadlet-check``,
before the generator is fetched), the pinned generator's .deb checked before it is opened,
and the real trixie quadlet's output checked and passed through systemd-analyze."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from ci.image import fetch
from ci.release import hosts, quadlet
from ci.release.errors import REFUSED, RefusedError, ReleaseError

REPO_ROOT = Path(__file__).resolve().parents[3]
IMAGE = "127.0.0.1:5000/bot4/engine@sha256:" + "ab" * 32


def _cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ci.release", "--root", str(REPO_ROOT), "quadlet-check", *args],
        capture_output=True, text=True, check=False, cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _shipped() -> str:
    return quadlet.render(REPO_ROOT, IMAGE)


def _hide_behind(sep: str, text: str) -> str:
    return text.replace(
        "Group=65532\n",
        f"Group=65532\nLabel=x{sep}[Install]\nPodmanArgs=--log-opt=path=/etc/cron.d/x\n",
    )


HOSTILE: dict[str, tuple[Callable[[str], str], str]] = {
    "a tag": (
        lambda t: t.replace(IMAGE, "127.0.0.1:5000/bot4/engine:0.1.0"),
        "(a tag can move); got 127.0.0.1:5000/bot4/engine:0.1.0",
    ),
    "a short digest": (
        lambda t: t.replace(IMAGE, IMAGE[:-1]),
        "Image= must be NAME@sha256:<64 hex>",
    ),
    "no ReadOnly": (lambda t: t.replace("ReadOnly=true\n", ""), "needs ReadOnly=true"),
    "a network": (lambda t: t.replace("Network=none", "Network=host"), "needs Network=none"),
    "capabilities kept": (
        lambda t: t.replace("DropCapability=all", "DropCapability=NET_RAW"),
        "needs DropCapability=all",
    ),
    "root": (lambda t: t.replace("User=65532", "User=0"), "needs User=65532"),
    "new privileges": (
        lambda t: t.replace("NoNewPrivileges=true\n", ""),
        "needs NoNewPrivileges=true",
    ),
    "a capability added back": (
        lambda t: t.replace("[Service]", "AddCapability=CAP_SYS_ADMIN\n[Service]"),
        "must not set AddCapability",
    ),
    "raw podman arguments": (
        lambda t: t.replace("[Service]", "PodmanArgs=--privileged\n[Service]"),
        "must not set PodmanArgs",
    ),
    "a host volume": (
        lambda t: t.replace("[Service]", "Volume=/:/host\n[Service]"),
        "must not set Volume",
    ),
    "a host file read into the environment": (
        lambda t: t.replace("[Service]", "EnvironmentFile=/root/.aws/credentials\n[Service]"),
        "must not set EnvironmentFile",
    ),
    # Quadlet ends lines at \n only: a line separator Python honours hid a [Section] line
    # from it, and PodmanArgs= (here: container logs written to a host path as root) with it
    **{
        f"a key hidden by a {name} line separator": (
            partial(_hide_behind, sep),
            "line 17: a line break other than \\n inside the line",
        )
        for name, sep in [("U+2028", "\u2028"), ("form feed", "\f"), ("CR", "\r")]
    },
    # Quadlet copies [Service] into the unit: a root command on the host before the start
    "a host command before the start": (
        lambda t: t.replace("Restart=on-failure", "ExecStartPre=/bin/sh -c 'touch /tmp/x'"),
        "[Service] must not set ExecStartPre (allowed: Restart,",
    ),
    # podman reads another containers.conf (default volumes, capabilities…)
    "podman configured from the environment": (
        lambda t: t.replace("[Service]", "[Service]\nEnvironment=CONTAINERS_CONF_OVERRIDE=/x"),
        "[Service] must not set Environment (allowed:",
    ),
    # systemd/Quadlet join a line ending in \ with the next, even a [Section] line, so
    # the keys below it stay in [Container] for Quadlet while a line parser sees [Install]
    "a key hidden by a line continuation": (
        lambda t: t.replace(
            "Group=65532\n", "Group=65532\nLabel=a=b \\\n[Install]\nSeccompProfile=unconfined\n"
        ),
        "line 17: a line continued with \\ is not accepted",
    ),
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_a_weakened_container_file_is_refused_before_anything_is_fetched(
    attack: str, tmp_path: Path
) -> None:
    edit, message = HOSTILE[attack]
    text = edit(_shipped())
    assert text != _shipped()
    path = tmp_path / "bot4-engine.container"
    path.write_bytes(text.encode())  # byte for byte
    cache = tmp_path / "cache"
    done = _cli(
        tmp_path, "--container", str(path),
        env={"BOT4_IMAGE_CACHE": str(cache), "BOT4_DEBIAN_MIRROR": "file:///nonexistent/"},
    )  # fmt: skip
    assert done.returncode == REFUSED, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert message in done.stderr
    assert not cache.exists()  # the generator's .deb was neither fetched nor cached


def test_a_tampered_generator_deb_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    """The mirror serves other bytes at the pinned pool path: the hash check refuses them
    and nothing enters the cache."""
    pin = quadlet.read_pin(REPO_ROOT)
    mirror = tmp_path / "mirror"
    deb = mirror / pin.filename
    deb.parent.mkdir(parents=True)
    deb.write_bytes(b"!<arch>\nnot podman\n")
    cache = tmp_path / "cache"
    done = _cli(
        tmp_path,
        env={"BOT4_IMAGE_CACHE": str(cache), "BOT4_DEBIAN_MIRROR": mirror.as_uri() + "/"},
    )
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert f"{pin.name} {pin.version} (trixie) could not be fetched" in done.stderr
    assert "Hash Sum mismatch" in done.stderr
    assert not (cache / "sha256").exists() or not list((cache / "sha256").iterdir())
    assert done.stdout == ""


def test_a_pin_file_with_a_bad_hash_or_path_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "ci/release").mkdir(parents=True)
    text = (REPO_ROOT / quadlet.PIN_FILE).read_text(encoding="utf-8")
    pin = quadlet.read_pin(REPO_ROOT)
    (root / quadlet.PIN_FILE).write_text(text.replace(pin.sha256, "e3987a9d"), encoding="utf-8")
    with pytest.raises(ReleaseError, match="sha256 must be 64 lowercase hex"):
        quadlet.read_pin(root)
    (root / quadlet.PIN_FILE).write_text(
        text.replace(pin.filename, "pool/../../etc/passwd.deb"), encoding="utf-8"
    )
    with pytest.raises(ReleaseError, match="filename must be an archive pool path"):
        quadlet.read_pin(root)
    for size in ("0", '"24686200"'):  # apt's download limit: a positive count of bytes
        (root / quadlet.PIN_FILE).write_text(
            text.replace(f"size = {pin.size}\n", f"size = {size}\n"), encoding="utf-8"
        )
        with pytest.raises(ReleaseError, match="size must be a positive integer"):
            quadlet.read_pin(root)
    (root / quadlet.PIN_FILE).write_text("[deb]\nname = 1\n", encoding="utf-8")
    with pytest.raises(ReleaseError, match="not a Quadlet pin file"):
        quadlet.read_pin(root)


class _EndlessDeb(http.server.BaseHTTPRequestHandler):
    """A hostile mirror: a body with no end in sight, chunked or announced as far larger
    than the pin (stopped at ``LIMIT`` so an unbounded reader fails the test instead of
    hanging it); counts what it got out."""

    protocol_version = "HTTP/1.1"
    LIMIT = 64 << 20
    chunked = True
    sent = 0

    def do_GET(self) -> None:
        self.send_response(200)
        if self.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(self.LIMIT))
        self.end_headers()
        block = b"!" * 0x10000
        chunk = b"10000\r\n" + block + b"\r\n" if self.chunked else block
        with contextlib.suppress(OSError):  # the reader hangs up: what we want
            while type(self).sent < self.LIMIT:
                self.wfile.write(chunk)
                type(self).sent += len(block)
            self.wfile.write(b"0\r\n\r\n" if self.chunked else b"")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("chunked", "message"),
    [
        (True, "sent more than the pinned 4096 bytes; the download was cut off"),
        (False, f"announced {_EndlessDeb.LIMIT} bytes where 4096 are pinned"),
    ],
)
def test_an_endless_body_from_the_mirror_is_cut_off_at_the_pinned_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunked: bool, message: str
) -> None:
    """The mirror streams bytes without end at the pinned pool path: the download stops
    soon after the pinned size, is refused in one line, and nothing is cached or left."""
    pin_text = (REPO_ROOT / quadlet.PIN_FILE).read_text(encoding="utf-8")
    pin = quadlet.read_pin(REPO_ROOT)
    root = tmp_path / "repo"
    (root / "ci/release").mkdir(parents=True)
    small = 4096  # a small pin keeps the test cheap; the bound is the pin's, whatever it is
    (root / quadlet.PIN_FILE).write_text(
        pin_text.replace(f"size = {pin.size}\n", f"size = {small}\n"), encoding="utf-8"
    )
    container = tmp_path / "bot4-engine.container"
    container.write_text(_shipped(), encoding="utf-8")
    monkeypatch.setattr(_EndlessDeb, "chunked", chunked)
    monkeypatch.setattr(_EndlessDeb, "sent", 0)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EndlessDeb)  # bot4: allow-ip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cache = tmp_path / "cache"
    mirror = f"http://127.0.0.1:{server.server_address[1]}/"  # bot4: allow-ip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ci.release", "--root", str(root), "quadlet-check",
             "--container", str(container)],
            capture_output=True, text=True, check=False, cwd=tmp_path, timeout=120,
            env={**os.environ, "BOT4_IMAGE_CACHE": str(cache),
                 "BOT4_DEBIAN_MIRROR": mirror},
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    # what the sockets' buffers hold on top of the pin; unbounded, all 64 MiB went out
    assert _EndlessDeb.sent < small + (16 << 20), _EndlessDeb.sent
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert f"{pin.name} {pin.version} (trixie) could not be fetched" in done.stderr
    assert message in done.stderr
    assert [p.name for p in cache.rglob("*") if p.is_file()] == []


def test_the_shipped_file_through_the_real_generator_and_systemd(tmp_path: Path) -> None:
    """The pinned trixie quadlet generates a unit that runs exactly the digest, hardened,
    and systemd-analyze verifies it (the CLI says the same)."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (apt-get install systemd)")
    generated, lines = quadlet.check(REPO_ROOT, _shipped(), IMAGE, tmp_path, "shipped")
    argv = generated.argv
    assert generated.version == quadlet.read_pin(REPO_ROOT).version.split("+")[0]
    assert argv[:2] == ["/usr/bin/podman", "run"] and argv[-1] == IMAGE
    for option, value in quadlet.RUN_FLAGS:
        assert quadlet._has(argv, option, value), option
    assert "--security-opt=no-new-privileges" in argv and "--read-only" in argv
    assert argv[argv.index("--user") + 1] == "65532:65532"
    assert [ln.split()[0] for ln in lines] == ["ok", "ok", "ok"]
    done = _cli(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "generated bot4-engine.service: podman run" in done.stdout
    assert "systemd-analyze verify bot4-engine.service" in done.stdout


def test_the_generated_unit_check_fails_on_real_generator_output(tmp_path: Path) -> None:
    """Bypassing our .container check, the real generator's output for a weakened file is
    refused by the ExecStart check: it is not a check that cannot fail."""
    binary = quadlet.generator(REPO_ROOT, tmp_path / "bin" / "quadlet")
    weak = (
        _shipped()
        .replace("ReadOnly=true\n", "")
        .replace("[Service]", "AddCapability=NET_RAW\n[Service]")
    )
    with pytest.raises(RefusedError, match="generated ExecStart lacks --read-only"):
        quadlet.generate(binary, weak, IMAGE, tmp_path / "weak")
    added = _shipped().replace("[Service]", "AddCapability=NET_RAW\n[Service]")
    with pytest.raises(RefusedError, match="generated ExecStart adds --cap-add"):
        quadlet.generate(binary, added, IMAGE, tmp_path / "added")
    with pytest.raises(RefusedError, match="is not /usr/bin/podman run"):
        quadlet.generate(binary, _shipped(), IMAGE.replace("ab", "cd"), tmp_path / "other")
    # what a key hidden from our check by a line continuation made of the unit
    for n, (key, shown) in enumerate(
        [
            ("SeccompProfile=unconfined", "--security-opt seccomp=unconfined"),
            ("PodmanArgs=--pid=host", "--pid=host"),
            ("PodmanArgs=-v/:/host", "-v/:/host"),
            ("SecurityLabelDisable=true", "--security-opt label=disable"),
            ("EnvironmentFile=/etc/hostname", "--env-file /etc/hostname"),
            ("PodmanArgs=--log-opt=path=/etc/cron.d/x", "--log-opt=path=/etc/cron.d/x: not an"),
            ("PodmanArgs=--pidfile /etc/passwd", "--pidfile: not an option"),
        ]
    ):
        hidden = _shipped().replace("[Service]", f"{key}\n[Service]")
        with pytest.raises(RefusedError, match=f"generated ExecStart adds {shown}"):
            quadlet.generate(binary, hidden, IMAGE, tmp_path / f"hidden{n}")


def test_systemd_analyze_refuses_a_broken_unit(tmp_path: Path) -> None:
    unit = tmp_path / "bot4-engine.service"
    unit.write_text("[Service]\nExecStart=/nonexistent/podman run x\n", encoding="utf-8")
    with pytest.raises(RefusedError, match="is not executable"):
        quadlet.systemd_verify(unit)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("--network=host", "sets --network to none, host"),
        ("--user 0", "sets --user to 65532:65532, 0"),
    ],
)
def test_a_generated_line_that_overrides_a_hardening_option_is_refused(
    extra: str, message: str
) -> None:
    # podman takes the last of a repeated option: the hardened value first is not enough
    line = (
        "/usr/bin/podman run --network none --security-opt=no-new-privileges --cap-drop all "
        f"--read-only --user 65532:65532 {extra} {IMAGE}"
    )
    quadlet.run_argv(f"[Service]\nExecStart={line.replace(f' {extra}', '')}\n", IMAGE)
    with pytest.raises(RefusedError, match=message):
        quadlet.run_argv(f"[Service]\nExecStart={line}\n", IMAGE)


def test_unit_parsing_and_specifiers(tmp_path: Path) -> None:
    with pytest.raises(RefusedError, match="generated ExecStart is not a command line"):
        quadlet.run_argv(f'[Service]\nExecStart=/usr/bin/podman run "--rm {IMAGE}\n', IMAGE)
    with pytest.raises(RefusedError, match="no \\[Container\\] section"):
        quadlet.check_container("[Unit]\nDescription=x\n", "f")
    with pytest.raises(RefusedError, match="line 1: not a unit file line"):
        quadlet.check_container("Image=x\n", "f")
    two = _shipped().replace("[Service]", f"Image={IMAGE}\n[Service]")
    with pytest.raises(RefusedError, match="Image= must be"):
        quadlet.check_container(two, "f")
    assert (
        hosts.expand_specifiers("--cidfile=%t/%N.cid", tmp_path)
        == f"--cidfile={tmp_path}/bot4-engine.cid"
    )
    assert hosts.expand_specifiers("%n 100%%", tmp_path) == "bot4-engine.service 100%"
    with pytest.raises(ReleaseError, match="uses %h"):
        hosts.expand_specifiers("%h/x", tmp_path)


def _deb(out: Path, version: str, member: bytes) -> Path:
    """A real .deb (dpkg-deb) named podman with the generator path holding ``member``."""
    root = out / "root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: podman\nVersion: {version}\nArchitecture: amd64\n"
        "Maintainer: t <t@example.invalid>\nDescription: fixture\n",
        encoding="utf-8",
    )
    (root / "usr/libexec/podman").mkdir(parents=True)
    (root / "usr/libexec/podman/quadlet").write_bytes(member)
    deb = out / "podman.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(root), str(deb)],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.rmtree(root)
    return deb


def test_a_cached_deb_swapped_after_its_check_is_not_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache re-hashes an entry and returns its path; whoever can write the cache can
    swap the file before it is opened. The swap is made at exactly that moment here: the
    swapped .deb (same name and version, another generator) must not be what runs."""
    pinned = quadlet.read_pin(REPO_ROOT)
    (tmp_path / "good").mkdir()
    (tmp_path / "evil").mkdir()
    good = _deb(tmp_path / "good", pinned.version, b"#!/bin/sh\necho genuine\n")
    evil = _deb(tmp_path / "evil", pinned.version, b"#!/bin/sh\necho swapped\n")
    genuine = good.read_bytes()
    digest = hashlib.sha256(genuine).hexdigest()
    root = tmp_path / "repo"
    (root / "ci/release").mkdir(parents=True)
    pin_text = (REPO_ROOT / quadlet.PIN_FILE).read_text(encoding="utf-8")
    (root / quadlet.PIN_FILE).write_text(pin_text.replace(pinned.sha256, digest), "utf-8")
    cache = fetch.Cache(tmp_path / "cache")
    cache.put(good, digest, "fixture")
    checked = fetch.Cache.get

    def get_then_swap(self: fetch.Cache, sha256: str) -> Path | None:
        path = checked(self, sha256)
        assert path is not None
        path.write_bytes(evil.read_bytes())
        return path

    monkeypatch.setattr(fetch.Cache, "get", get_then_swap)
    dest = tmp_path / "bin" / "quadlet"
    with pytest.raises(ReleaseError, match="changed after its sha256 was checked; not opening"):
        quadlet.generator(root, dest, cache)
    assert not dest.exists()
    # unswapped, the same entry gives the genuine generator (the test can pass)
    monkeypatch.setattr(fetch.Cache, "get", checked)
    # the same bytes again (dpkg-deb stamps the clock: rebuilt a second later, another .deb)
    (tmp_path / "again.deb").write_bytes(genuine)
    cache.put(tmp_path / "again.deb", digest, "fixture")
    assert quadlet.generator(root, dest, cache).read_bytes() == b"#!/bin/sh\necho genuine\n"

"""The shipped Quadlet file, put through the real Quadlet generator.

Debian 12's podman (4.3.1) has no Quadlet, so the generator comes from Debian trixie's
podman .deb, pinned in ``ci/release/quadlet.toml``: fetched from the Debian mirror apt is
configured with (``BOT4_DEBIAN_MIRROR`` overrides it), read no further than its pinned
size, checked against the pinned sha256 before it is opened, and only
``/usr/libexec/podman/quadlet`` is taken out of it. The generator runs the way systemd
runs it (``QUADLET_UNIT_DIRS=DIR quadlet OUTDIR``); the .service it writes must run
``podman run`` on the pinned digest with every hardening flag the shipped unit promises,
and pass ``systemd-analyze verify``.

Our own check refuses a .container that names a tag instead of a digest, lacks a
hardening key or adds one that undoes it — before the generator is even fetched.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.compat import tomllib
from ci.errors import GateError
from ci.image import apt_index, deb_unpack, fetch
from ci.release.errors import RefusedError, ReleaseError

PIN_FILE = Path("ci/release/quadlet.toml")
# The same kind of pin for Debian trixie's cosign (the cosign tests, act's cosign stand-in).
COSIGN_PIN_FILE = Path("ci/release/cosign.toml")
CONTAINER_FILE = Path("ops/podman/bot4-engine.container")
PLACEHOLDER = "REGISTRY/bot4/engine@sha256:DIGEST"
# What ``quadlet-check`` renders the shipped file with when no image is at hand.
EXAMPLE_IMAGE = "registry.invalid/bot4/engine@sha256:" + "0" * 64
UNIT = "bot4-engine"
# The host's Debian release whose apt-configured mirror serves the pinned .deb.
HOST_CODENAME = "bookworm"
DIGEST_REF = re.compile(r"[a-z0-9][a-z0-9.:_/-]*@sha256:[0-9a-f]{64}")
# [Container] keys the shipped file must carry, exactly (Quadlet's names).
REQUIRED = {
    "ReadOnly": "true",
    "Network": "none",
    "DropCapability": "all",
    "NoNewPrivileges": "true",
    "User": "65532",
    "Group": "65532",
}
# Keys that would undo the hardening or widen what the container reaches.
FORBIDDEN = (
    "AddCapability",
    "AddDevice",
    "PodmanArgs",
    "SecurityLabelDisable",
    "SeccompProfile",
    "Unmask",
    "Volume",
    "Mount",
    "PublishPort",
    "EnvironmentFile",  # a host file read into the container's environment
    "EnvironmentHost",  # the host's (the service's) environment handed to the container
)
# The generated ``podman run`` options that must be there: (option, value or None).
RUN_FLAGS = (
    ("--read-only", None),
    ("--network", "none"),
    ("--cap-drop", "all"),
    ("--security-opt", "no-new-privileges"),
    ("--user", "65532:65532"),
)
RUN_FORBIDDEN = (
    "--privileged", "--cap-add", "--volume", "-v", "--mount", "--device", "--publish", "-p",
    "--pid", "--ipc", "--uts", "--userns", "--env-host", "--env-file",
)  # fmt: skip
# Every option the generated ``podman run`` may carry: what Quadlet writes for the shipped
# file, and labels and environment. Anything else (--log-opt path=…, --pidfile, --init-path,
# --cgroupns… each writes or reads the host as root) is refused, whichever key made it.
RUN_ALLOWED = (
    "--name", "--cidfile", "--replace", "--rm", "--cgroups", "--network", "--sdnotify", "-d",
    "--security-opt", "--cap-drop", "--read-only", "--user", "--label", "--env",
)  # fmt: skip
# The only --security-opt the unit may pass (seccomp=unconfined, label=disable… undo it).
SECURITY_OPT = "no-new-privileges"
# [Service] keys the .container may set: Quadlet copies [Service] into the unit as is, so
# ExecStartPre= would run a host command as root and Environment= could point podman at
# another containers.conf (CONTAINERS_CONF_OVERRIDE) with volumes or capabilities.
SERVICE_KEYS = ("Restart", "RestartSec", "TimeoutStartSec", "TimeoutStopSec")


@dataclass(frozen=True)
class DebPin:
    """The one .deb the Quadlet check needs, and the file taken from it."""

    name: str
    version: str
    suite: str
    architecture: str
    filename: str
    size: int
    sha256: str
    member: str


def read_pin(root: Path, pin_file: Path = PIN_FILE) -> DebPin:
    """A pin file (``ci/release/quadlet.toml``, ``cosign.toml``), every field checked for
    shape before anything uses it."""
    path = root / pin_file
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))["deb"]
        pin = DebPin(**{k: doc[k] for k in DebPin.__dataclass_fields__})
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseError(f"{path}: not a Quadlet pin file ({exc})") from None
    if not re.fullmatch(r"[0-9a-f]{64}", str(pin.sha256)):
        raise ReleaseError(f"{path}: sha256 must be 64 lowercase hex digits")
    if not re.fullmatch(r"pool/[A-Za-z0-9+._~/-]+\.deb", str(pin.filename)) or ".." in pin.filename:
        raise ReleaseError(f"{path}: filename must be an archive pool path")
    if type(pin.size) is not int or pin.size <= 0:
        raise ReleaseError(f"{path}: size must be a positive integer (bytes)")
    return pin


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd-style unit as ``{section: {key: [values…]}}`` (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    # Lines end at \n only, as Quadlet reads them; a line Python would break elsewhere
    # (\r, \f, \x1c, \x85, \u2028…) would show this parser a [Section] Quadlet never sees.
    for n, raw in enumerate(text.split("\n"), start=1):
        if len(raw.splitlines()) > 1:
            raise RefusedError(f"line {n}: a line break other than \\n inside the line")
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if line.endswith("\\"):
            # systemd and Quadlet join it with the next line, even a [Section] line: parsed
            # line by line here, a key could seem to sit in another section than it does
            raise RefusedError(f"line {n}: a line continued with \\ is not accepted")
        key, sep, value = line.partition("=")
        if current is None or not sep:
            raise RefusedError(f"line {n}: not a unit file line: {line[:60]!r}")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def check_container(text: str, what: str) -> str:
    """Refuse a .container that is not pinned by digest or not hardened; the image."""
    container = parse_unit(text).get("Container")
    if container is None:
        raise RefusedError(f"{what}: no [Container] section")
    images = container.get("Image", [])
    if len(images) != 1 or not DIGEST_REF.fullmatch(images[0]):
        shown = images[0] if images else "nothing"
        raise RefusedError(
            f"{what}: Image= must be NAME@sha256:<64 hex> (a tag can move); got {shown}"
        )
    for key, value in REQUIRED.items():
        if container.get(key) != [value]:
            raise RefusedError(f"{what}: [Container] needs {key}={value}")
    added = sorted(key for key in FORBIDDEN if key in container)
    if added:
        raise RefusedError(f"{what}: [Container] must not set {', '.join(added)}")
    service = sorted(set(parse_unit(text).get("Service", {})) - set(SERVICE_KEYS))
    if service:
        raise RefusedError(
            f"{what}: [Service] must not set {', '.join(service)} "
            f"(allowed: {', '.join(SERVICE_KEYS)})"
        )
    return images[0]


def _has(argv: Sequence[str], option: str, value: str | None) -> bool:
    for i, arg in enumerate(argv):
        if value is None and arg == option:
            return True
        if value is not None and (
            arg == f"{option}={value}" or (arg == option and argv[i + 1 : i + 2] == [value])
        ):
            return True
    return False


def run_argv(service: str, image: str) -> list[str]:
    """The generated unit's ``ExecStart``, checked: ``podman run`` of exactly ``image``
    with every hardening option and none that undoes it."""
    lines = parse_unit(service).get("Service", {}).get("ExecStart", [])
    if len(lines) != 1:
        raise RefusedError(f"generated {UNIT}.service: expected one ExecStart, got {len(lines)}")
    try:
        argv = shlex.split(lines[0])
    except ValueError as exc:  # an unbalanced quote
        raise RefusedError(
            f"generated ExecStart is not a command line ({exc}): {lines[0]}"
        ) from None
    if argv[:2] != ["/usr/bin/podman", "run"] or argv[-1] != image:
        raise RefusedError(f"generated ExecStart is not /usr/bin/podman run … {image}: {lines[0]}")
    missing = [f"{o} {v}" if v else o for o, v in RUN_FLAGS if not _has(argv, o, v)]
    if missing:
        raise RefusedError(f"generated ExecStart lacks {', '.join(missing)}: {lines[0]}")
    flags = ("--privileged", "--env-host")  # the forbidden options that take no value
    bad = [
        f"{a} {argv[i + 1]}" if a in (*RUN_FORBIDDEN, "--security-opt") and a not in flags else a
        for i, a in enumerate(argv[2:-1], start=2)
        if a.split("=", 1)[0] in RUN_FORBIDDEN
        or (not a.startswith("--") and a[:2] in RUN_FORBIDDEN)  # -v/:/host
        or (a == "--security-opt" and argv[i + 1] != SECURITY_OPT)
        or (a.startswith("--security-opt=") and a != f"--security-opt={SECURITY_OPT}")
    ]
    if bad:
        raise RefusedError(f"generated ExecStart adds {' '.join(bad)}")
    for option, value in RUN_FLAGS:  # a second --network/--user would override the first
        given = [argv[i + 1] for i, a in enumerate(argv[2:-1], start=2) if a == option]
        given += [a.split("=", 1)[1] for a in argv[2:-1] if a.startswith(f"{option}=")]
        if value is not None and option != "--cap-drop" and set(given) != {value}:
            raise RefusedError(f"generated ExecStart sets {option} to {', '.join(given)}")
    other = [a for a in argv[2:-1] if a.startswith("-") and a.split("=", 1)[0] not in RUN_ALLOWED]
    if other:
        raise RefusedError(
            f"generated ExecStart adds {' '.join(other)}: not an option this check allows "
            f"({', '.join(RUN_ALLOWED)})"
        )
    return argv


def mirror(suite: str, environ: Mapping[str, str] | None = None) -> str:
    """The Debian archive apt is configured with (the one serving the host's release)."""
    try:
        targets = apt_index.index_targets("amd64", HOST_CODENAME)
    except GateError as exc:
        raise ReleaseError(f"quadlet: {exc}") from None
    main = [t for t in targets if t.suite == HOST_CODENAME]
    if not main:
        raise ReleaseError(f"quadlet: apt has no {HOST_CODENAME} archive configured")
    return apt_index.repo_uri(main[0].repo_uri, suite, environ)


def generator(root: Path, dest: Path, cache: fetch.Cache | None = None) -> Path:
    """The pinned ``quadlet`` binary written to ``dest``."""
    return pinned_binary(root, PIN_FILE, dest, cache)


def pinned_binary(root: Path, pin_file: Path, dest: Path, cache: fetch.Cache | None = None) -> Path:
    """One file of a pinned .deb written to ``dest`` (mode 0755): the .deb comes from the
    cache or the mirror, is hash-checked before it is opened, and must be the pinned
    package and version."""
    pin = read_pin(root, pin_file)
    cache = cache or fetch.Cache(fetch.default_cache())
    deb = cache.get(pin.sha256)
    if deb is None:
        uri = mirror(pin.suite) + pin.filename
        with fetch.download_dir(cache) as tmp:
            part = tmp / "podman.deb"
            try:
                fetch.apt_download([(uri, part, pin.sha256, pin.size)])
            except GateError as exc:
                raise ReleaseError(
                    f"{pin_file.stem}: {pin.name} {pin.version} ({pin.suite}) could not be fetched "
                    f"({exc}); if {pin.suite} superseded it, re-pin {pin_file} (docs/release.md)"
                ) from None
            deb = cache.put(part, pin.sha256, f"{pin.name} {pin.version}")
    # The cache checked the file, but it can change between that check and the open (the
    # cache is a shared directory): its bytes are read once, checked, and a private copy of
    # exactly those bytes is what gets opened.
    try:
        blob = deb.read_bytes()
    except OSError as exc:
        raise ReleaseError(f"{pin_file.stem}: cannot read {deb}: {exc.strerror}") from None
    if hashlib.sha256(blob).hexdigest() != pin.sha256:
        raise ReleaseError(
            f"{pin_file.stem}: {deb} changed after its sha256 was checked; not opening it"
        )
    with tempfile.TemporaryDirectory(prefix="bot4-deb-") as private:
        copy = Path(private) / "pinned.deb"
        copy.write_bytes(blob)
        try:
            contents = deb_unpack.unpack(copy, drop=("*",), keep=(pin.member,))
        except GateError as exc:
            raise ReleaseError(f"{pin_file.stem}: {exc}") from None
    if (contents.name, contents.version) != (pin.name, pin.version):
        raise ReleaseError(
            f"{pin_file}: the .deb is {contents.name} {contents.version}, not the pinned "
            f"{pin.name} {pin.version}"
        )
    found = [e for e in contents.entries if e.path == pin.member and e.kind == "file"]
    if not found:
        raise ReleaseError(f"{pin_file.stem}: {pin.name} {pin.version} has no {pin.member}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(found[0].data)
    dest.chmod(0o755)
    return dest


@dataclass(frozen=True)
class Generated:
    """What the generator made of the .container: the unit text and its checked argv."""

    service: Path
    text: str
    argv: list[str]
    version: str


def generate(binary: Path, container_text: str, image: str, workdir: Path) -> Generated:
    """Run the generator as systemd does on a unit directory holding only our file."""
    units, out = workdir / "units", workdir / "generated"
    for d in (units, out):
        d.mkdir(parents=True, exist_ok=True)
    (units / f"{UNIT}.container").write_text(container_text, encoding="utf-8")
    env = {**os.environ, "QUADLET_UNIT_DIRS": str(units)}
    version = _run([str(binary), "-version"], env).strip()
    _run([str(binary), "-v", str(out), str(out), str(out)], env)
    service = out / f"{UNIT}.service"
    if not service.is_file():
        raise RefusedError(f"quadlet {version} generated no {UNIT}.service from our file")
    text = service.read_text(encoding="utf-8")
    return Generated(service, text, run_argv(text, image), version)


def systemd_verify(unit: Path) -> str:
    """``systemd-analyze verify`` on a generated unit (systemd's own parser and checks)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        raise ReleaseError("systemd-analyze is not installed (apt-get install systemd)")
    done = subprocess.run(  # noqa: S603  # nosec B603 - systemd-analyze on our file
        [tool, "verify", str(unit)], capture_output=True, text=True, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0 or done.stderr.strip():
        detail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise RefusedError(f"systemd-analyze verify {unit.name}: {detail}")
    return _run([tool, "--version"], dict(os.environ)).splitlines()[0]


def _run(argv: list[str], env: Mapping[str, str]) -> str:
    done = subprocess.run(  # noqa: S603  # nosec B603 - the pinned generator, fixed arguments
        argv, env=dict(env), capture_output=True, text=True, check=False, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        detail = (done.stderr.strip() or "no output").splitlines()[-1]
        raise RefusedError(f"{Path(argv[0]).name} failed: {detail}")
    return done.stdout


def render(root: Path, image: str) -> str:
    """The shipped .container with the placeholder image replaced by ``image``."""
    text = (root / CONTAINER_FILE).read_bytes().decode("utf-8")  # line ends kept as they are
    if PLACEHOLDER not in text:
        raise ReleaseError(f"{root / CONTAINER_FILE} no longer names {PLACEHOLDER}")
    return text.replace(PLACEHOLDER, image)


def check(
    root: Path, container_text: str, image: str | None, workdir: Path, what: str
) -> tuple[Generated, list[str]]:
    """Our check, then the pinned generator and systemd-analyze: (generated, report)."""
    pinned = check_container(container_text, what)
    if image is not None and pinned != image:
        raise RefusedError(f"{what}: Image={pinned}, expected {image}")
    binary = generator(root, workdir / "bin" / "quadlet")
    generated = generate(binary, container_text, pinned, workdir)
    systemd = systemd_verify(generated.service)
    pin = read_pin(root)
    shown = " ".join(generated.argv[2:-1])
    return generated, [
        f"ok   {what}: Image by digest, {', '.join(f'{k}={v}' for k, v in REQUIRED.items())}",
        f"ok   quadlet {generated.version} (Debian {pin.suite} {pin.name} {pin.version}, "
        f"sha256 {pin.sha256[:12]}… checked) generated {UNIT}.service: podman run {shown} "
        f"{pinned[:40]}…",
        f"ok   systemd-analyze verify {UNIT}.service ({systemd}): no findings",
    ]

"""``host-check``: the built image deployed the way real hosts run it, on this machine.

**Podman** (Debian's 4.3.1, rootful, vfs storage, all state in a temp dir) enforces the
host's trust itself: the shipped ``ops/podman/policy.json`` (only images GPG-signed by the
release key, ``signedBy`` ``GPGKeys``; everything else rejected) and
``ops/podman/registries.d/bot4.yaml`` (where the signatures are), rendered for a
throwaway ``docker-registry`` on loopback. ``podman pull`` must refuse an unsigned image,
one signed by another key, a tampered layer and a tampered manifest, and accept the
signed image by digest; the shipped systemd unit's ``ExecStart`` line then runs it
(read-only, ``--network=none``, every capability dropped, no_new_privs, uid 65532). The
shipped Quadlet file goes through the pinned Quadlet generator (``quadlet.py``) on the same
digest, and the ``ExecStart`` it generates is run by this podman too.

**Docker** has no policy for these signatures, so the host verifies first
(``python -m ci.release verify``: cosign signature, attestations, every blob) and pulls
exactly the verified digest (dockerd re-hashes what it downloads: a tampered layer fails
the pull); then a hardened ``docker run``.

Sandbox facts found here and reported, not hidden: Debian's containers/image has
``sigstoreSigned`` compiled out (the check records the refusal); ``podman run`` cannot set
rlimits in this sandbox (runc's prlimit on the container process is not permitted), so the
run goes through a runtime wrapper that drops ``process.rlimits`` from the bundle and
executes runc — everything else is podman's own spec. Any other unexpected outcome raises.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ci.image import output
from ci.oci.layout import Layout
from ci.oci.manifest import Manifest
from ci.oci.runtime import find_runc
from ci.release import attest, e2e, gpg, keys, quadlet, sign, transfer
from ci.release.dockerfile_check import Dockerd
from ci.release.errors import RefusedError, ReleaseError
from ci.release.local_registry import LocalRegistry
from ci.release.reference import Reference, parse
from ci.release.registry import Registry

HOST_FILES = Path("ops/podman")
PLACEHOLDER_REPO = "REGISTRY/bot4/engine"
KEY_PATH = "/etc/pki/containers/bot4-release.asc"
LOOKASIDE = "file:///var/lib/containers/sigstore"
HARDENING = (
    "--read-only",
    "--network=none",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--user=65532:65532",
)
# The unit's other [Service] lines, exactly (ExecStartPre= and ExecStop= run as root).
SERVICE_LINES = {
    "ExecStartPre": "/usr/bin/podman pull ${BOT4_IMAGE}",
    "ExecStop": "/usr/bin/podman stop --ignore --time 30 bot4-engine",
    "Restart": "on-failure",
    "RestartSec": "10s",
}
# Every option the unit's ``podman run`` may carry: the hardening and its own bookkeeping.
UNIT_OPTIONS = ("--rm", "--pull=never", "--name bot4-engine", *HARDENING)
# Runs in the container (the image has python3 and no shell): identity, capabilities,
# no_new_privs, network interfaces, whether / is writable.
PROBE = (
    "import os\n"
    "s = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)\n"
    "print('uid', os.getuid(), os.getgid())\n"
    "print('capeff', s['CapEff'].strip(), 'nnp', s['NoNewPrivs'].strip())\n"
    "print('if', *sorted(l.split(':')[0].strip() for l in list(open('/proc/net/dev'))[2:]))\n"
    "try:\n    open('/probe', 'w')\n    print('rootfs writable')\n"
    "except OSError:\n    print('rootfs readonly')\n"
)
CONFINED = "uid 65532, no capabilities, no_new_privs, only lo, read-only /"
PROBE_EXPECTED = "uid 65532 65532\ncapeff 0000000000000000 nnp 1\nif lo\nrootfs readonly"
SHIM = """#!{python}
# Debian podman on this sandbox: runc may not prlimit the container process. Drop
# process.rlimits from the bundle podman wrote, then run runc with podman's arguments.
import json, os, sys
args = sys.argv[1:]
if "--bundle" in args:
    path = os.path.join(args[args.index("--bundle") + 1], "config.json")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    spec.get("process", {{}}).pop("rlimits", None)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(spec, f)
os.execv({runc!r}, [{runc!r}, *args])
"""


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ReleaseError(f"{name} is not installed (apt-get install {package})")
    return found


def _tail(text: str) -> str:
    """The last line of a tool's output, without gpgme's signature dump."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return gpg.GPGME_DETAIL.sub("", lines[-1]) if lines else "no output"


def render_host_files(
    root: Path, dest: Path, ref: Reference, public_key: Path, lookaside: Path
) -> tuple[Path, Path]:
    """The shipped ``policy.json`` and ``registries.d`` with this registry, key and
    signature store filled in: (policy.json, registries.d directory)."""
    src = root / HOST_FILES
    policy = (src / "policy.json").read_text(encoding="utf-8")
    regd = (src / "registries.d" / "bot4.yaml").read_text(encoding="utf-8")
    for text, what in ((policy, "policy.json"), (regd, "registries.d/bot4.yaml")):
        if PLACEHOLDER_REPO not in text:
            raise ReleaseError(f"{src / what} no longer names {PLACEHOLDER_REPO}")
    policy = policy.replace(PLACEHOLDER_REPO, ref.name).replace(KEY_PATH, str(public_key))
    regd = regd.replace(PLACEHOLDER_REPO, ref.name).replace(LOOKASIDE, lookaside.as_uri())
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "policy.json").write_text(policy, encoding="utf-8")
    (dest / "registries.d").mkdir(exist_ok=True)
    (dest / "registries.d" / "bot4.yaml").write_text(regd, encoding="utf-8")
    return dest / "policy.json", dest / "registries.d"


def unit_run_args(root: Path) -> list[str]:
    """The ``podman run`` options of the shipped unit's ``ExecStart`` (image excluded),
    checked: every hardening flag there, and nothing but the options we write (an
    allow-list, as for Quadlet's generated line: ``--privileged``, ``-v /:/host``,
    ``--pid=host``, ``--cap-add``, a second ``--user``… are refused, however spelled)."""
    path = root / HOST_FILES / "bot4-engine.service"
    what = "bot4-engine.service"
    try:  # systemd's own line rules: continuations and odd line breaks refused
        service = quadlet.parse_unit(path.read_text(encoding="utf-8")).get("Service", {})
    except RefusedError as exc:
        raise RefusedError(f"{what}: {exc}") from None
    others = sorted(set(service) - set(SERVICE_LINES) - {"ExecStart", "Environment"})
    if others:
        raise RefusedError(
            f"{what}: [Service] must not set {', '.join(others)} "
            f"(allowed: {', '.join(sorted({*SERVICE_LINES, 'ExecStart', 'Environment'}))})"
        )
    for key, value in SERVICE_LINES.items():  # a root command on the host, as written or not
        if service.get(key) != [value]:
            raise RefusedError(f"{what}: [Service] needs exactly {key}={value}")
    environment = service.get("Environment", [])
    if (
        len(environment) != 1
        or not environment[0].startswith("BOT4_IMAGE=")
        or " " in environment[0]
    ):
        raise RefusedError(f"{what}: [Service] needs exactly one Environment=BOT4_IMAGE=REF")
    lines = service.get("ExecStart", [])
    if len(lines) != 1:  # an empty ExecStart= resets the list: the last one would run
        raise RefusedError(f"{what}: [Service] must have one ExecStart, not {len(lines)}")
    try:
        argv = shlex.split(lines[0])
    except ValueError as exc:  # an unbalanced quote
        raise RefusedError(f"{what}: ExecStart is not a command line ({exc})") from None
    if argv[:2] != ["/usr/bin/podman", "run"] or argv[-1] != "${BOT4_IMAGE}":
        raise RefusedError(f"{what}: ExecStart must be /usr/bin/podman run … ${{BOT4_IMAGE}}")
    missing = [flag for flag in HARDENING if flag not in argv]
    if missing:
        raise RefusedError(f"{what}: ExecStart lacks {' '.join(missing)}")
    options = argv[2:-1]
    joined = iter(options)  # "--name X" as one option, so X is checked with it
    given = [f"{a} {next(joined, '')}" if a == "--name" else a for a in joined]
    added = [option for option in given if option not in UNIT_OPTIONS]
    if added:
        raise RefusedError(
            f"{what}: ExecStart adds {' '.join(added)}: only {' '.join(UNIT_OPTIONS)} may appear"
        )
    return options


class Podman:
    """Rootful podman with all its state under ``workdir`` (vfs storage, cgroupfs, file
    events; ``$HOME/.config/containers/registries.d`` is where it reads lookaside config)."""

    def __init__(self, workdir: Path, registries_d: Path) -> None:
        self.binary = _tool("podman", "podman")
        self.workdir = workdir
        home = workdir / "home"
        (home / ".config" / "containers").mkdir(parents=True, exist_ok=True)
        link = home / ".config" / "containers" / "registries.d"
        if not link.exists():
            link.symlink_to(registries_d.resolve())
        self.env = {**os.environ, "HOME": str(home)}
        runc = find_runc("the host check")
        self.shim = workdir / "runc-no-rlimits"
        self.shim.write_text(SHIM.format(python=sys.executable, runc=runc), encoding="utf-8")
        self.shim.chmod(0o755)
        self.runc = runc
        # podman refuses a runroot longer than 50 characters: keep it short, whatever the
        # caller's directory (removed by close()).
        self._runbase = output.scratch(output.outer_tmp(), "p")
        if len(str(self._runbase)) > 40:
            shutil.rmtree(self._runbase)
            raise ReleaseError(
                f"podman needs a short runroot; {self._runbase} is too long: set TMPDIR=/tmp"
            )

    def close(self) -> None:
        """Remove the run roots (the storage lives in ``workdir``)."""
        shutil.rmtree(self._runbase, ignore_errors=True)

    def __enter__(self) -> Podman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self, *args: str, storage: str = "store", runtime: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [
            self.binary,
            "--root", str(self.workdir / storage),
            "--runroot", str(self._runbase / storage),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
            "--runtime", runtime or self.runc,
            *args,
        ]  # fmt: skip
        return subprocess.run(  # noqa: S603  # nosec B603 - podman with our arguments
            argv, env=self.env, capture_output=True, text=True, check=False, timeout=600,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def pull(
        self, image: str, policy: Path, storage: str = "store"
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "pull", "--tls-verify=false", "--signature-policy", str(policy), image,
            storage=storage,
        )  # fmt: skip


def _refused(what: str, done: subprocess.CompletedProcess[str], needle: str) -> str:
    if done.returncode == 0:
        raise ReleaseError(f"host-check: {what} was accepted; it must be refused")
    reason = _tail(done.stderr)
    if needle.lower() not in done.stderr.lower():
        raise ReleaseError(f"host-check: {what}: refused for another reason: {reason}")
    return f"ok   {what}: refused: {reason[-240:]}"


def _probe(out: str, what: str) -> None:
    if out.strip() != PROBE_EXPECTED:
        raise ReleaseError(f"host-check: {what}: confinement differs: {out.strip()!r}")


def check(src: Path, root: Path, say: Callable[[str], None]) -> Iterator[str]:
    """Run every host check; yields one report line per check."""
    hardened = unit_run_args(root)  # a widened unit is refused before anything runs
    tag = Layout(src).tag()
    if not tag:
        raise ReleaseError(f"host-check: {src} names no tag for skopeo (oci:DIR:TAG)")
    sbom = json.loads((src.parent / "sbom.cdx.json").read_text(encoding="utf-8"))
    with output.short_scratch("hc") as tmp:
        homes = [tmp / "gnupg-release", tmp / "gnupg-other"]
        signer, _stranger = e2e.signers(tmp)
        try:
            release_fpr = gpg.new_key(homes[0], "bot4 release <release@example.invalid>")
            other_fpr = gpg.new_key(homes[1], "someone else <other@example.invalid>")
            with LocalRegistry(tmp / "registry") as local:
                registry = local.client()
                ref = parse(f"{local.host}/bot4/engine:{tag}")
                public = gpg.export_public(homes[0], release_fpr, tmp / "release.asc")
                policy, regd = render_host_files(root, tmp / "etc", ref, public, tmp / "sigstore")
                env = {**os.environ, "GNUPGHOME": str(homes[0])}
                digest = gpg.sign(src, tag, ref, release_fpr, regd, env, plain_http=True)
                pinned = ref.with_digest(digest)
                yield f"ok   pushed {pinned.name}@{digest[:19]}… with a GPG simple signature"
                with Podman(tmp / "podman", regd) as podman:
                    yield from _podman_checks(
                        local,
                        registry,
                        podman,
                        pinned,
                        policy,
                        regd,
                        homes[1],
                        other_fpr,
                        signer,
                        tmp,
                        root,
                        hardened,
                    )
                attest.attest(registry, pinned, signer, attest.SBOM, sbom)
                prov = attest.provenance(root, "HEAD", "urn:bot4:builder:host-check", {})
                attest.attest(registry, pinned, signer, attest.PROVENANCE, prov)
                yield from _docker_checks(local, registry, pinned, signer, tmp, root, say)
        finally:
            for home in homes:
                gpg.stop_agent(home)
            signer.close()
            _stranger.close()


def _podman_checks(
    local: LocalRegistry,
    registry: Registry,
    podman: Podman,
    pinned: Reference,
    policy: Path,
    regd: Path,
    other_home: Path,
    other_fpr: str,
    signer: keys.Signer,
    tmp: Path,
    root: Path,
    hardened: list[str],
) -> Iterator[str]:
    digest = str(pinned.digest)
    image = f"{pinned.name}@{digest}"
    top = registry.manifest(pinned.repository, digest)

    unsigned = e2e.crafted(registry, pinned.repository, top)
    yield _refused(
        "podman pull of an unsigned image",
        podman.pull(f"{pinned.name}@{unsigned.digest}", policy, "refused"),
        "no signature exists",
    )
    wrong = _signed_by_other(registry, pinned, unsigned, regd, other_home, other_fpr, tmp)
    yield _refused(
        "podman pull of an image signed by another key",
        podman.pull(f"{pinned.name}@{wrong}", policy, "refused"),
        "Invalid GPG signature",
    )
    layer = str(top.json()["layers"][-1]["digest"])
    with e2e.Tampered(local, layer, e2e.flip_last_byte):
        yield _refused(
            "podman pull of the signed digest with a tampered layer",
            podman.pull(image, policy, "refused"),
            "Digest did not match",
        )
    with e2e.Tampered(local, digest, e2e.swap_hex):
        yield _refused(
            "podman pull of the signed digest with a tampered manifest",
            podman.pull(image, policy, "refused"),
            "digest",
        )
    yield _sigstore_support(registry, pinned, signer, tmp)

    done = podman.pull(image, policy)
    if done.returncode != 0:
        raise ReleaseError(f"host-check: podman refused the signed image: {_tail(done.stderr)}")
    yield f"ok   podman pull {image[:60]}…: accepted by policy.json (signedBy GPGKeys)"

    plain = podman.run("run", *hardened, image)
    if plain.returncode == 0:
        yield "ok   podman run works here without the rlimit wrapper"
    elif "rlimit" in plain.stderr:
        yield f"note podman run in this sandbox: {_tail(plain.stderr)[-160:]}"
    else:
        raise ReleaseError(f"host-check: podman run failed: {_tail(plain.stderr)}")
    ran = podman.run("run", *hardened, image, runtime=str(podman.shim))
    if ran.returncode != 0:
        raise ReleaseError(
            f"host-check: podman run (the unit's options) failed: {_tail(ran.stderr)}"
        )
    yield "ok   podman run with the unit's ExecStart options: bot4 doctor exited 0"
    probe = podman.run(
        "run", *hardened, "--entrypoint", "/usr/bin/python3", image, "-c", PROBE,
        runtime=str(podman.shim),
    )  # fmt: skip
    _probe(probe.stdout, "podman run")
    yield f"ok   podman run confinement: {CONFINED}"
    yield from _quadlet_checks(podman, image, root, tmp / "quadlet")


def expand_specifiers(arg: str, rundir: Path) -> str:
    """systemd's specifiers in the generated ExecStart, as systemd expands them for a
    system unit named bot4-engine.service (``%t`` is the runtime directory, here ours)."""
    values = {"t": str(rundir), "N": quadlet.UNIT, "n": f"{quadlet.UNIT}.service", "%": "%"}
    out, i = [], 0
    while i < len(arg):
        if arg[i] != "%":
            out.append(arg[i])
            i += 1
            continue
        spec = arg[i + 1 : i + 2]
        if spec not in values:
            raise ReleaseError(f"host-check: generated ExecStart uses %{spec}, not expanded here")
        out.append(values[spec])
        i += 2
    return "".join(out)


def _died(podman: Podman, cid: str, timeout: float = 120.0) -> str:
    """The exit code podman's event log records for a detached container (``--rm`` has
    removed the container itself by then)."""
    deadline = time.monotonic() + timeout
    while True:
        done = podman.run(
            "events", "--stream=false", "--filter", f"container={cid}", "--filter", "event=died",
            "--format", "{{.ContainerExitCode}}",
        )  # fmt: skip
        codes = done.stdout.split()
        if codes:
            return codes[-1]
        if time.monotonic() > deadline:
            raise ReleaseError(f"host-check: container {cid[:12]} did not exit in {timeout:.0f}s")
        time.sleep(0.5)


def _quadlet_checks(podman: Podman, image: str, root: Path, tmp: Path) -> Iterator[str]:
    """The shipped .container through the pinned Quadlet generator, then the generated
    ExecStart executed by this host's podman on the signed digest."""
    text = quadlet.render(root, image)
    generated, lines = quadlet.check(root, text, image, tmp, str(quadlet.CONTAINER_FILE))
    yield from lines
    rundir = tmp / "run"
    rundir.mkdir(parents=True, exist_ok=True)
    argv = [expand_specifiers(a, rundir) for a in generated.argv[2:]]
    version = _tail(podman.run("--version").stdout)
    cidfile = rundir / f"{quadlet.UNIT}.cid"
    done = podman.run("run", *argv, runtime=str(podman.shim))
    if done.returncode != 0 and "--cgroups=split" in argv and "cgroup mount" in done.stderr:
        yield (
            f"note {version} refused the generated --cgroups=split on this sandbox's cgroup v1 "
            f"hierarchy ({_tail(done.stderr)}); the rest of the line runs without it"
        )
        argv.remove("--cgroups=split")
        cidfile.unlink(missing_ok=True)  # systemd's ExecStopPost would remove it
        done = podman.run("run", *argv, runtime=str(podman.shim))
    if done.returncode != 0:
        raise ReleaseError(f"host-check: the generated ExecStart failed: {_tail(done.stderr)}")
    cid = cidfile.read_text(encoding="utf-8").strip()
    code = _died(podman, cid)
    cidfile.unlink()
    if code != "0":
        raise ReleaseError(f"host-check: the generated ExecStart's container exited {code}")
    yield (
        f"ok   {version} ran the generated ExecStart (detached, --sdnotify=conmon, --replace, "
        f"--cidfile; rlimit wrapper as above): bot4 doctor exited 0"
    )
    fg = [a for a in argv if a != "-d"]
    probe = podman.run(
        "run", *fg[:-1], "--entrypoint", "/usr/bin/python3", fg[-1], "-c", PROBE,
        runtime=str(podman.shim),
    )  # fmt: skip
    _probe(probe.stdout, "the generated ExecStart")
    yield f"ok   the generated ExecStart's confinement (in the foreground): {CONFINED}"


def _signed_by_other(
    registry: Registry,
    pinned: Reference,
    crafted_manifest: Manifest,
    regd: Path,
    other_home: Path,
    other_fpr: str,
    tmp: Path,
) -> str:
    """A second crafted image pushed by skopeo with a signature by another GPG key."""
    wrong = e2e.crafted(registry, pinned.repository, crafted_manifest)
    out = tmp / "wrong-layout"
    transfer.pull(registry, pinned.with_digest(wrong.digest), out, tag="wrong")
    env = {**os.environ, "GNUPGHOME": str(other_home)}
    return gpg.sign(out, "wrong", pinned.with_tag("wrong"), other_fpr, regd, env, plain_http=True)


def _sigstore_support(registry: Registry, pinned: Reference, signer: keys.Signer, tmp: Path) -> str:
    """Does this podman verify a ``sigstoreSigned`` requirement (our cosign signature,
    read as a sigstore attachment)? Found here: Debian's build refuses it."""
    sign.sign(registry, pinned, signer)  # a cosign signature under sha256-….sig
    (tmp / "cosign.pub").write_bytes(signer.public_pem)
    regd = tmp / "sigstore-registries.d"
    regd.mkdir()
    (regd / "bot4.yaml").write_text(
        f"docker:\n  {pinned.name}:\n    use-sigstore-attachments: true\n", encoding="utf-8"
    )
    keypath = str(tmp / "cosign.pub")
    doc = {
        "default": [{"type": "reject"}],
        "transports": {"docker": {pinned.name: [{"type": "sigstoreSigned", "keyPath": keypath}]}},
    }
    path = tmp / "sigstore-policy.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with Podman(tmp / "podman-sigstore", regd) as podman:
        done = podman.pull(f"{pinned.name}@{pinned.digest}", path)
    if done.returncode == 0:
        return "ok   podman verified our cosign signature with a sigstoreSigned policy"
    if "sigstore disabled" not in done.stderr:
        raise ReleaseError(f"host-check: sigstoreSigned failed unexpectedly: {_tail(done.stderr)}")
    return f"note Debian's podman refuses sigstoreSigned: {_tail(done.stderr)[-160:]}"


def _docker_checks(
    local: LocalRegistry,
    registry: Registry,
    pinned: Reference,
    signer: keys.Signer,
    tmp: Path,
    root: Path,
    say: Callable[[str], None],
) -> Iterator[str]:
    digest = str(pinned.digest)
    image = f"{pinned.name}@{digest}"
    policy = e2e.policy_file_for(tmp, root / "ops" / "deploy-policy.toml", signer)
    verify = subprocess.run(  # noqa: S603  # nosec B603 - our own interpreter and module
        [sys.executable, "-m", "ci.release", "--root", str(root), "verify", image,
         "--policy", str(policy)],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if verify.returncode != 0:
        raise ReleaseError(f"host-check: verify before docker pull failed: {_tail(verify.stderr)}")
    yield f"ok   python -m ci.release verify {image[:48]}…: exit 0"
    with Dockerd(tmp / "dockerd") as daemon:
        top = registry.manifest(pinned.repository, digest)
        layer = str(top.json()["layers"][-1]["digest"])
        with e2e.Tampered(local, layer, e2e.flip_last_byte):
            try:
                daemon.docker("pull", "--quiet", image, what="docker pull (tampered layer)")
            except ReleaseError as exc:
                reason = str(exc)[-160:]
                yield f"ok   docker pull of the verified digest, tampered layer: refused: {reason}"
            else:
                raise ReleaseError("host-check: docker pulled a tampered layer")
        daemon.docker("pull", "--quiet", image, what="docker pull")
        daemon.docker("run", "--rm", *HARDENING, image, what="docker run")
        yield "ok   docker pull by digest + hardened docker run: bot4 doctor exited 0"
        probe = daemon.docker(
            "run", "--rm", *HARDENING, "--entrypoint", "/usr/bin/python3", image, "-c", PROBE,
            what="docker run (probe)",
        )  # fmt: skip
        _probe(probe, "docker run")
        yield f"ok   docker run confinement: {CONFINED}"

"""``python -m ci.release <command>``: push, sign, attest, verify and deploy the engine image.

Exit codes (``ci.release.errors``): 0 success, 1 a failed step or bad input file, 2 bad
usage, 3 verify/deploy refused the image. Every failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ci.errors import run_command
from ci.oci.layout import Layout
from ci.release import attest, bot4_signer, deploy, gpg, keys, sign, transfer, trust_policy, verify
from ci.release.auth import credentials_from_env
from ci.release.errors import ERROR, ReleaseError, UsageError
from ci.release.reference import Reference
from ci.release.reference import parse as parse_reference
from ci.release.registry import Registry, Retry

log = logging.getLogger(__name__)


def _err(message: str) -> None:
    print(f"ci.release: error: {message}", file=sys.stderr)


def _say(message: str) -> None:
    print(f"release: {message}", file=sys.stderr, flush=True)


def parse(text: str) -> Reference:
    """A reference from the command line; a malformed one is a usage error (exit 2)."""
    try:
        return parse_reference(text)
    except ReleaseError as exc:
        raise UsageError(str(exc)) from None


def _registry(args: argparse.Namespace, ref: Reference) -> Registry:
    return Registry(
        ref.registry,
        plain_http=True if args.plain_http else None,
        retry=Retry(attempts=args.retries),
        credentials=credentials_from_env(os.environ),
    )


def _today(args: argparse.Namespace) -> dt.date:
    if args.today is None:
        return dt.datetime.now(dt.timezone.utc).date()
    try:
        return dt.date.fromisoformat(args.today)
    except ValueError:
        raise UsageError(f"--today expects YYYY-MM-DD, got {args.today!r}") from None


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} expects KEY=VALUE, got {value!r}")
        out[key] = val
    return out


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ReleaseError(f"{what} {path} is not a JSON object")
    return doc


def _pinned(args: argparse.Namespace) -> tuple[Registry, Reference]:
    ref = parse(args.ref)
    registry = _registry(args, ref)
    if ref.digest is None:
        raise UsageError(
            f"{ref} is a tag; name the digest (python -m ci.release resolve {ref} prints it)"
        )
    return registry, ref


def cmd_push(args: argparse.Namespace) -> int:
    """Push an OCI layout; print the digest (unchanged by the push)."""
    ref = parse(args.ref)
    digest = transfer.push(_registry(args, ref), Layout(Path(args.layout)), ref, args.layout_tag)
    print(digest)
    return 0


def _push_inputs(args: argparse.Namespace, registry: Registry, ref: Reference) -> str:
    from ci.image.fetch import Cache, default_cache  # noqa: PLC0415
    from ci.image.lock_format import LOCK_FILE, read_lock  # noqa: PLC0415
    from ci.release import inputs  # noqa: PLC0415

    cache = Cache(Path(args.cache)) if args.cache else Cache(default_cache())
    lock = read_lock(Path(args.root) / LOCK_FILE)
    tag = f"{ref.tag}-inputs" if args.command == "release" and ref.tag else ref.tag or "inputs"
    return str(ref.with_digest(inputs.push(registry, ref.repository, tag, lock, cache)))


def cmd_push_inputs(args: argparse.Namespace) -> int:
    """Push the locked .debs and wheels as one artifact; print REF@sha256:…."""
    ref = parse(args.ref)
    print(_push_inputs(args, _registry(args, ref), ref))
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    """Pull an image by digest into a new OCI layout."""
    registry, ref = _pinned(args)
    transfer.pull(registry, ref, Path(args.dest))
    print(ref.digest)
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    """Print the reference pinned to the digest its tag points at now."""
    ref = parse(args.ref)
    print(ref.with_digest(_registry(args, ref).resolve(ref.repository, ref.tag or "latest")))
    return 0


def cmd_public_key(args: argparse.Namespace) -> int:
    """Print a signing key's public half (PEM) for the deploy policy."""
    signer = bot4_signer.open_signer(args.key, os.environ)
    try:
        sys.stdout.write(signer.public_pem.decode())
        _say(f"fingerprint {keys.PublicKey(signer.public_pem).fingerprint}")
    finally:
        signer.close()
    return 0


def _provenance(args: argparse.Namespace, registry: Registry, ref: Reference) -> dict[str, Any]:
    commit = args.commit
    if commit is None:  # the image says which commit it was built from
        annotations = (
            registry.manifest(ref.repository, verify.pinned(ref)).json().get("annotations")
        )
        commit = (annotations or {}).get("org.opencontainers.image.revision") or "HEAD"
    params = {"command": "python -m ci.image build", **_pairs(args.param, "--param")}
    builder = args.builder_id or os.environ.get("BOT4_BUILDER_ID") or "urn:bot4:builder:local"
    inputs_ref = getattr(args, "inputs_ref", None)
    return attest.provenance(Path(args.root), str(commit), builder, params, inputs=inputs_ref)


def _attest_all(
    args: argparse.Namespace, registry: Registry, ref: Reference, signer: keys.Signer
) -> None:
    if args.sbom:
        attest.attest(registry, ref, signer, attest.SBOM, _read_json(Path(args.sbom), "SBOM"))
        _say(f"attested the SBOM {args.sbom}")
    if args.provenance:
        attest.attest(registry, ref, signer, attest.PROVENANCE, _provenance(args, registry, ref))
        _say("attested SLSA provenance")
    if args.predicate:
        if not args.predicate_type:
            raise UsageError("--predicate needs --predicate-type URI")
        predicate = _read_json(Path(args.predicate), "predicate")
        attest.attest(registry, ref, signer, args.predicate_type, predicate)
        _say(f"attested {args.predicate_type}")


def cmd_sign(args: argparse.Namespace) -> int:
    """cosign-compatible signature of a digest."""
    registry, ref = _pinned(args)
    signer = bot4_signer.open_signer(args.key, os.environ)
    try:
        print(sign.sign(registry, ref, signer, _pairs(args.annotation, "-a")))
    finally:
        signer.close()
    return 0


def cmd_attest(args: argparse.Namespace) -> int:
    """Attach signed in-toto attestations (SBOM, provenance, or any predicate)."""
    registry, ref = _pinned(args)
    if not (args.sbom or args.provenance or args.predicate):
        raise UsageError("nothing to attest: give --sbom FILE, --provenance or --predicate FILE")
    signer = bot4_signer.open_signer(args.key, os.environ)
    try:
        _attest_all(args, registry, ref, signer)
    finally:
        signer.close()
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    """Push a layout, sign it, attest its SBOM and provenance; print the pinned reference."""
    ref = parse(args.ref)
    registry = _registry(args, ref)
    src = Path(args.layout)
    signer = bot4_signer.open_signer(args.key, os.environ)
    try:
        digest = transfer.push(registry, Layout(src), ref, args.layout_tag)
        pinned = ref.with_digest(digest)
        _say(f"pushed {pinned}")
        sign.sign(registry, pinned, signer)
        _say("signed")
        if args.inputs:
            args.inputs_ref = _push_inputs(args, registry, ref)
            _say(f"pushed the inputs {args.inputs_ref}")
        args.sbom = args.sbom or str(src.parent / "sbom.cdx.json")
        args.provenance = True
        _attest_all(args, registry, pinned, signer)
    finally:
        signer.close()
    print(pinned)
    return 0


def _policy(args: argparse.Namespace) -> trust_policy.DeployPolicy:
    return trust_policy.load(Path(args.policy))


def cmd_verify(args: argparse.Namespace) -> int:
    """Check signature and attestations against the deploy policy (nothing runs)."""
    ref = parse(args.ref)
    registry = _registry(args, ref)
    pinned = deploy.pin(registry, ref, args.allow_tag, _say)
    verified = verify.verify(registry, pinned, _policy(args), _today(args))
    print(
        f"verified {pinned}: signed by {verified.signer.name!r}; attested "
        f"{', '.join(sorted(verified.statements))}; manifest and "
        f"{len(verified.image.blobs) - 1} blob(s) ({verified.image.size} bytes) match their digests"
    )
    return 0


def _workdir(value: str | None) -> str | None:
    if value is not None and not Path(value).is_dir():
        raise UsageError(
            f"--workdir {value}: no such directory (create it first: mkdir -p {value})"
        )
    return value


def cmd_deploy(args: argparse.Namespace) -> int:
    """Verify, pull, scan, then run hardened; the container's exit status decides."""
    ref = parse(args.ref)
    registry = _registry(args, ref)
    today, workdir, deploy_policy = _today(args), _workdir(args.workdir), _policy(args)
    with tempfile.TemporaryDirectory(prefix="bot4-deploy-", dir=workdir) as tmp:
        done = deploy.deploy(
            registry, ref, deploy_policy, Path(tmp), Path(args.root), today, _say,
            allow_tag=args.allow_tag, index=args.index,
        )  # fmt: skip
    sys.stdout.write(done.outcome.stdout)
    print(f"deployed {done.verified.ref}")
    return 0


def _gpg_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    if args.gnupghome:
        env["GNUPGHOME"] = args.gnupghome
    return env


def cmd_gpg_sign(args: argparse.Namespace) -> int:
    """Push with a GPG simple signature (skopeo --sign-by) into lookaside storage."""
    ref = parse(args.ref)
    with tempfile.TemporaryDirectory(prefix="bot4-registries.d-") as tmp:
        regd = gpg.write_registries_d(Path(tmp), ref, Path(args.lookaside))
        digest = gpg.sign(
            Path(args.layout), args.layout_tag, ref, args.fingerprint, regd, _gpg_env(args),
            plain_http=_registry(args, ref).scheme == "http",
        )  # fmt: skip
    print(digest)
    return 0


def cmd_gpg_verify(args: argparse.Namespace) -> int:
    """skopeo's own policy check: signedBy the given GPG public key, else rejected."""
    ref = parse(args.ref)
    with tempfile.TemporaryDirectory(prefix="bot4-gpg-policy-") as tmp:
        regd = gpg.write_registries_d(Path(tmp) / "registries.d", ref, Path(args.lookaside))
        pol = gpg.write_policy(Path(tmp) / "policy.json", ref, Path(args.public_key))
        gpg.verify(ref, pol, regd, _gpg_env(args), plain_http=_registry(args, ref).scheme == "http")
    print(f"verified {ref}: GPG simple signature accepted by skopeo's policy")
    return 0


def cmd_deploy_check(args: argparse.Namespace) -> int:
    """End to end against a throwaway registry: push, sign, attest, refusals, deploy."""
    from ci.release import e2e  # noqa: PLC0415 - needs the registry, runc, skopeo, gpg

    for line in e2e.check(Path(args.layout), Path(args.root), Path(args.policy), _say):
        print(line)
    return 0


def cmd_host_check(args: argparse.Namespace) -> int:
    """Podman (policy.json signedBy) and Docker (verify, then pull by digest) on this host."""
    from ci.release import hosts  # noqa: PLC0415 - needs podman, dockerd, the registry, gpg

    for line in hosts.check(Path(args.layout), Path(args.root), _say):
        print(line, flush=True)
    return 0


def cmd_quadlet_check(args: argparse.Namespace) -> int:
    """Our check of a .container, then the pinned Quadlet generator and systemd-analyze."""
    from ci.release import quadlet  # noqa: PLC0415 - needs apt, the generator's .deb

    root = Path(args.root)
    if args.container:
        path = Path(args.container)
        try:
            text = path.read_bytes().decode("utf-8")  # as Quadlet reads it: no \r translated
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read ({exc})") from None
        what = str(path)
    else:
        text = quadlet.render(root, quadlet.EXAMPLE_IMAGE)
        what = str(quadlet.CONTAINER_FILE)
    with tempfile.TemporaryDirectory(prefix="bot4-quadlet-") as tmp:
        _, lines = quadlet.check(root, text, None, Path(tmp), what)
    for line in lines:
        print(line)
    return 0


def cmd_docker_context(args: argparse.Namespace) -> int:
    """Write the Dockerfile's build context (hashed requirements, wheelhouse, engine wheel)."""
    from ci.image.fetch import default_cache  # noqa: PLC0415 - only these commands need it
    from ci.release import dockerfile_check  # noqa: PLC0415 - builds the engine wheel

    cache = Path(args.cache) if args.cache else default_cache()
    with tempfile.TemporaryDirectory(prefix="bot4-docker-context-") as tmp:
        out = dockerfile_check.make_context(
            Path(args.root), cache, args.revision, Path(args.dest), Path(tmp)
        )
    print(out)
    return 0


def cmd_dockerfile_check(args: argparse.Namespace) -> int:
    """Build the Dockerfile on a local dockerd on our base; compare with the hermetic image."""
    from ci.image.fetch import default_cache  # noqa: PLC0415 - only this command needs it
    from ci.release import dockerfile_check  # noqa: PLC0415 - needs dockerd and a built image

    cache = Path(args.cache) if args.cache else default_cache()
    pip = [args.pip] if args.pip else None
    result = dockerfile_check.check(Path(args.root), Path(args.image), cache, _say, pip)
    if not result.equivalent:
        raise ReleaseError(
            f"the Dockerfile's image differs from the hermetic one: {result.summary()}"
        )
    print(f"Dockerfile: {result.summary()}")
    return 0


def _key_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key",
        required=True,
        help="signing key BACKEND:KEY_ID (file, kms, pkcs11; configured by BOT4_* variables)",
    )


def _attest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sbom", help="CycloneDX JSON to attest (predicate https://cyclonedx.org/bom)")
    p.add_argument("--provenance", action="store_true", help="attest SLSA provenance v1")
    p.add_argument("--commit", help="built revision (default: the image's revision annotation)")
    p.add_argument("--builder-id", help="SLSA builder id (default: $BOT4_BUILDER_ID)")
    p.add_argument("--param", action="append", default=[], help="build parameter KEY=VALUE")
    p.add_argument("--predicate", help="any predicate JSON file")
    p.add_argument("--predicate-type", help="its predicate type URI")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="python -m ci.release", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--plain-http", action="store_true", help="HTTP even for non-loopback registries"
    )
    parser.add_argument("--retries", type=int, default=4, help="attempts per request (default 4)")
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)
    _registry_commands(sub)
    _signing_commands(sub)
    _deploy_commands(sub)
    _gpg_commands(sub)
    return parser


SubParsers = Any  # argparse's _SubParsersAction is private


def _registry_commands(sub: SubParsers) -> None:
    p = sub.add_parser("push", help="push an OCI layout; print its digest")
    p.add_argument("layout")
    p.add_argument("ref", help="HOST[:PORT]/REPO[:TAG]")
    p.add_argument("--layout-tag", help="which manifest of the layout (default: its only one)")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("push-inputs", help="push image.lock's .debs and wheels as one artifact")
    p.add_argument("ref", help="HOST[:PORT]/REPO[:TAG]")
    p.add_argument("--cache", help="the image download cache (default: as python -m ci.image)")
    p.set_defaults(func=cmd_push_inputs)

    p = sub.add_parser("pull", help="pull REF@sha256:… into a new OCI layout")
    p.add_argument("ref")
    p.add_argument("dest")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("resolve", help="print the digest-pinned form of a tag")
    p.add_argument("ref")
    p.set_defaults(func=cmd_resolve)

    p = sub.add_parser("public-key", help="print a signing key's public PEM")
    _key_option(p)
    p.set_defaults(func=cmd_public_key)


def _signing_commands(sub: SubParsers) -> None:
    p = sub.add_parser("sign", help="cosign-compatible signature (sha256-….sig)")
    p.add_argument("ref", help="HOST/REPO@sha256:…")
    _key_option(p)
    p.add_argument(
        "-a", "--annotation", action="append", default=[], help="KEY=VALUE in the payload"
    )
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("attest", help="signed in-toto attestations (sha256-….att)")
    p.add_argument("ref", help="HOST/REPO@sha256:…")
    _key_option(p)
    _attest_options(p)
    p.set_defaults(func=cmd_attest)

    p = sub.add_parser("release", help="push + sign + attest SBOM and provenance")
    p.add_argument("layout")
    p.add_argument("ref", help="HOST[:PORT]/REPO:TAG")
    p.add_argument("--layout-tag", help="which manifest of the layout")
    p.add_argument(
        "--inputs",
        action="store_true",
        help="also push image.lock's .debs and wheels (TAG-inputs) and name them in the provenance",
    )
    p.add_argument("--cache", help="the image download cache (default: as python -m ci.image)")
    _key_option(p)
    _attest_options(p)
    p.set_defaults(func=cmd_release)


def _deploy_commands(sub: SubParsers) -> None:
    for name, func, text in (
        ("verify", cmd_verify, "verify signature and attestations against the deploy policy"),
        ("deploy", cmd_deploy, "verify, pull, scan, then run hardened under runc"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("ref", help="HOST/REPO@sha256:… (a tag alone is refused)")
        p.add_argument("--policy", default=trust_policy.POLICY_FILE, help="deploy policy TOML")
        p.add_argument("--allow-tag", action="store_true", help="resolve a tag instead of refusing")
        p.add_argument("--today", help=argparse.SUPPRESS)
        if name == "deploy":
            p.add_argument("--workdir", help="where to unpack the bundle (default: $TMPDIR)")
            p.add_argument(
                "--index",
                action="append",
                default=[],
                help="SUITE=PATH Packages file for the pending-update check (as ci.image scan)",
            )
        p.set_defaults(func=func)
    p = sub.add_parser("deploy-check", help="end to end against a throwaway local registry")
    p.add_argument(
        "--layout", default="build/image/oci", help="built image (default: build/image/oci)"
    )
    p.add_argument("--policy", default=trust_policy.POLICY_FILE, help="deploy policy to start from")
    p.set_defaults(func=cmd_deploy_check)
    p = sub.add_parser(
        "host-check", help="podman (signature policy) and docker deploys against a local registry"
    )
    p.add_argument(
        "--layout", default="build/image/oci", help="built image (default: build/image/oci)"
    )
    p.set_defaults(func=cmd_host_check)
    p = sub.add_parser(
        "quadlet-check", help="a .container through our check, the pinned quadlet, systemd-analyze"
    )
    p.add_argument(
        "--container", help="file to check (default: ops/podman/bot4-engine.container, rendered)"
    )
    p.set_defaults(func=cmd_quadlet_check)


def _gpg_commands(sub: SubParsers) -> None:
    p = sub.add_parser("docker-context", help="the Dockerfile's build context (offline wheelhouse)")
    p.add_argument("dest", help="directory to create")
    p.add_argument("--revision", default="HEAD", help="commit whose engine wheel to build")
    p.add_argument("--cache", help="the image download cache (default: as python -m ci.image)")
    p.set_defaults(func=cmd_docker_context)
    p = sub.add_parser(
        "dockerfile-check", help="build the Dockerfile on a local dockerd; compare (slow)"
    )
    p.add_argument("--image", default="build/image", help="the hermetic build's --out")
    p.add_argument("--cache", help="the image download cache (default: as python -m ci.image)")
    p.add_argument("--pip", help="the pip that downloads the pinned pip wheel (as ci.image)")
    p.set_defaults(func=cmd_dockerfile_check)

    p = sub.add_parser("gpg-sign", help="push with a GPG simple signature (skopeo --sign-by)")
    p.add_argument("layout")
    p.add_argument("ref", help="HOST/REPO:TAG")
    p.add_argument("--layout-tag", required=True, help="tag of the manifest in the layout")
    p.add_argument("--fingerprint", required=True, help="GPG key fingerprint")
    p.add_argument("--lookaside", required=True, help="signature storage directory")
    p.add_argument("--gnupghome", help="GNUPGHOME (default: the environment's)")
    p.set_defaults(func=cmd_gpg_sign)

    p = sub.add_parser("gpg-verify", help="skopeo policy.json signedBy check")
    p.add_argument("ref", help="HOST/REPO@sha256:…")
    p.add_argument("--public-key", required=True, help="exported GPG public key")
    p.add_argument("--lookaside", required=True, help="signature storage directory")
    p.add_argument("--gnupghome", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_gpg_verify)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; GateError → one line on stderr and its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    from ci.image.output import run_scratch  # noqa: PLC0415

    try:
        with run_scratch():  # $TMPDIR for this run and its children; a killed run's is swept
            return run_command(args, _err)
    except OSError as exc:  # a file or directory the user named, as one line
        _err(f"{exc.filename or ''}: {exc.strerror or exc}".removeprefix(": "))
        return ERROR

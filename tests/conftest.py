"""Test-wide settings and shared real backends.

No silent skips: the ``ci.testing.skips`` plugin turns a skip into a failure unless
the run declares the absence it names (``BOT4_ABSENT=runc,ipv6``).

Hypothesis runs derandomized so the gate is repeatable. moto's KMS server and the
SoftHSM2 tokens are session-wide: a PKCS#11 library reads its configuration once per
process, so every test that needs a token must share one token directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

SOFTHSM_LIBRARIES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
SOFTHSM_TOKENS = ("bot4-test", "bot4-release")

settings.register_profile(
    "gate",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("BOT4_HYPOTHESIS_PROFILE", "gate"))

# No silent skips, and session-owned tests deselected (see ci.testing.skips).
pytest_plugins = ("ci.testing.skips",)

# Variables that make tools colour their output even into a pipe. ci.yml sets FORCE_COLOR
# for its logs; the tests read what nox, pytest and scripts/gate print through pipes, and
# must read the same text on a runner as on a developer's terminal (under act, ci.yml's
# tests job failed four tests on colour codes alone).
COLOUR_FORCING = ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE")


@pytest.fixture(scope="session", autouse=True)
def _no_forced_colour() -> Iterator[None]:
    """The tests' processes and the subprocesses they start see no colour-forcing variable;
    pytest's own report, set up before any fixture, keeps the caller's colours."""
    with pytest.MonkeyPatch.context() as patch:
        for name in COLOUR_FORCING:
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def kms_env() -> Iterator[dict[str, str]]:
    """moto's KMS in server mode on a free loopback port; boto3 speaks real HTTP to it."""
    # imported here: moto's server (Flask, werkzeug, boto) costs ~1.5 s CPU to import, paid
    # at collection by every xdist worker if it were at the top of this file
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret - moto dummy credentials
        "AWS_SESSION_TOKEN": "testing",
        "BOT4_KMS_REGION": "eu-west-1",
        "BOT4_KMS_ENDPOINT": f"http://{host}:{port}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        yield env
    server.stop()


@pytest.fixture(scope="session")
def softhsm_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    """One SoftHSM2 token directory for the session, with one token per label.

    Fails when SoftHSM2 is absent unless declared (BOT4_ABSENT=softhsm2); scripts/gate
    installs the Debian package softhsm2.
    """
    library = next((path for path in SOFTHSM_LIBRARIES if Path(path).exists()), None)
    util = shutil.which("softhsm2-util")
    if library is None or util is None:
        pytest.skip("softhsm2 is not installed (Debian package softhsm2)")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    pin_file = base / "pin"
    pin_file.write_bytes(b"5678\n")
    pin_file.chmod(0o600)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))
        for label in SOFTHSM_TOKENS:
            subprocess.run(
                [
                    util,
                    "--init-token",
                    "--free",
                    "--label",
                    label,
                    "--so-pin",
                    "1234",
                    "--pin",
                    "5678",
                ],
                check=True,
                capture_output=True,
            )
        yield {
            label: {
                "BOT4_PKCS11_LIBRARY": library,
                "BOT4_PKCS11_TOKEN": label,
                "BOT4_PKCS11_PIN_FILE": str(pin_file),
            }
            for label in SOFTHSM_TOKENS
        }


# Under pytest-xdist every worker builds its own copy of a session fixture. The costly ones
# (the fixture image, the registry, moto, the SoftHSM tokens) are built once by keeping the
# tests that use them on one worker: the full run uses --dist loadgroup. The first name a
# test uses wins; without xdist the marker does nothing.
SHARED_FIXTURES = {
    "built": "image",
    "locked": "image",
    "distro": "image",
    "local_registry": "registry",
    "softhsm_tokens": "softhsm",
    "kms_env": "kms",
}


# Whole directories of end-to-end tests (real image builds from fixture .debs and wheels,
# kill -9 and reproduce in fresh clones; a real registry, runc, podman, GPG and cosign
# vectors): `nox -s e2e` runs them under coverage, `tests` leaves them out (ci.testing.skips).
E2E_DIRS = tuple(Path(__file__).parent / d for d in ("ci/image", "ci/release"))


@pytest.hookimpl(tryfirst=True)  # before ci.testing.skips deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test that uses a costly session fixture with that fixture's xdist group,
    and each test under E2E_DIRS `e2e` (unless another session owns it already)."""
    # imported here, not at the top: pytest_plugins must import the plugin first (for
    # assertion rewriting), after this module is loaded
    from ci.testing.skips import SESSION_MARKERS

    for item in items:
        owned = any(item.get_closest_marker(m) for m in SESSION_MARKERS)  # e.g. dockerfile
        if not owned and any(d in item.path.parents for d in E2E_DIRS):
            item.add_marker(pytest.mark.e2e)
        names = getattr(item, "fixturenames", ())
        group = next((g for f, g in SHARED_FIXTURES.items() if f in names), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))

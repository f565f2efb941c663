from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from ci import cli
from ci.errors import GateError
from ci.gate import source_scan as security_scan

REPO = Path(__file__).resolve().parents[3]
# Addresses are assembled at run time so this file itself stays clean under the scan.
PRIVATE = ".".join(["10", "1", "2", "3"])
LOOPBACK = ".".join(["127", "0", "0", "1"])
V6 = ":".join(["2001", "db8", "", "1"])
POLICY = security_scan.ScanPolicy(
    include=("*.py", "*.toml", "*.md"), exclude=("locks/*",), loopback_ok_in=("tests/*",)
)


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def kinds(findings: list[security_scan.Finding]) -> list[tuple[str, int, str]]:
    return [(f.path, f.line, f.detail.split(" ")[0]) for f in findings]


def test_private_ipv4_in_src_fails(git_repo: Path) -> None:
    write(git_repo, "src/bot4/net.py", f'HOST = "{PRIVATE}"\n')
    findings = security_scan.scan(git_repo, POLICY)
    assert kinds(findings) == [("src/bot4/net.py", 1, PRIVATE)]
    assert str(findings[0]).startswith(f"src/bot4/net.py:1: hard-coded IP address: {PRIVATE}")


def test_loopback_only_where_allowed(git_repo: Path) -> None:
    write(git_repo, "tests/test_x.py", f'URL = "http://{LOOPBACK}:8080"\n')
    write(git_repo, "src/bot4/x.py", f'BIND = "{LOOPBACK}"  # default\n')
    assert kinds(security_scan.scan(git_repo, POLICY)) == [("src/bot4/x.py", 1, LOOPBACK)]


def test_ipv6_and_config_files(git_repo: Path) -> None:
    write(git_repo, "config.toml", f'peer = "[{V6}]:443"\n')
    assert kinds(security_scan.scan(git_repo, POLICY)) == [
        ("config.toml", 1, str(ipaddress.ip_address(V6)))
    ]


def test_bracketed_url_hosts_are_addresses_but_slices_are_not(git_repo: Path) -> None:
    write(
        git_repo, "src/bot4/u.py", 'URL = "http://[::1]:8080/"\nS = "xs[::2] ys[1::3] f(a)[2::4]"\n'
    )
    assert kinds(security_scan.scan(git_repo, POLICY)) == [("src/bot4/u.py", 1, "::1")]


def test_code_that_only_looks_like_addresses_passes(git_repo: Path) -> None:
    write(
        git_repo,
        "src/bot4/ok.py",
        "xs = list(range(9))\n"
        "ys = xs[1::2]\n"
        'classifier = "Programming Language :: Python :: 3.11"\n'
        'version = "1.2.3.4567"\n'
        'when = "12:30:45"\n'
        'mac = "aa:bb:cc:dd:ee:ff"\n'
        'ratio = "300.1.2.3"\n',
    )
    assert security_scan.scan(git_repo, POLICY) == []


def test_pragma_and_excludes(git_repo: Path) -> None:
    write(
        git_repo, "src/bot4/doc.py", f'EXAMPLE = "{PRIVATE}"  # bot4: allow-ip (RFC 1918 example)\n'
    )
    write(git_repo, "locks/x.toml", f'a = "{PRIVATE}"\n')
    assert security_scan.scan(git_repo, POLICY) == []


def test_ignored_and_unparseable_files(git_repo: Path) -> None:
    write(git_repo, ".gitignore", "build/\n")
    write(git_repo, "build/gen.py", f'X = "{PRIVATE}"\n')
    write(git_repo, "src/broken.py", f'x = """\n{PRIVATE}\n')  # unterminated: scanned as text
    (git_repo / "src" / "blob.py").write_bytes(b"\xff\xfe\x00")
    assert kinds(security_scan.scan(git_repo, POLICY)) == [("src/broken.py", 2, PRIVATE)]


def test_committed_secret_fails(git_repo: Path) -> None:
    key = "AKIA" + "IOSFODNN7" + "EXAMPLE"
    write(git_repo, "src/bot4/creds.py", f'AWS_KEY = "{key}"\n')
    findings = security_scan.scan(git_repo, POLICY)
    assert [(f.path, f.line, f.kind) for f in findings] == [
        ("src/bot4/creds.py", 1, "possible secret")
    ]
    assert "AWS Access Key" in findings[0].detail
    assert key not in str(findings[0])


def test_explicit_paths_and_missing_file(git_repo: Path) -> None:
    write(git_repo, "a.py", f'X = "{PRIVATE}"\n')
    write(git_repo, "b.py", "X = 1\n")
    assert security_scan.scan(git_repo, POLICY, ["b.py"]) == []
    with pytest.raises(GateError, match="no such file"):
        security_scan.scan(git_repo, POLICY, ["zzz.py"])


def test_not_a_git_tree(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="not a git work tree"):
        security_scan.tracked_files(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[security", "invalid TOML"),
        ("x = 1", "missing \\[security\\]"),
        ("[security]\ninclude = 1", "include must be"),
    ],
)
def test_bad_policy(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GateError, match=message):
        security_scan.load_policy(path)
    with pytest.raises(GateError, match="not found"):
        security_scan.load_policy(tmp_path / "none.toml")


def test_cli_fails_on_an_address_in_src(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(git_repo, "src/bot4/net.py", f'HOST = "{PRIVATE}"\n')
    subprocess.run(["git", "-C", str(git_repo), "add", "-A"], check=True)
    policy = str(REPO / "ci" / "policy.toml")
    assert cli.main(["--root", str(git_repo), "security-scan", "--policy", policy]) == 1
    captured = capsys.readouterr()
    assert f"src/bot4/net.py:1: hard-coded IP address: {PRIVATE}" in captured.out
    assert "ci: error: security scan: 1 finding(s)" in captured.err
    (git_repo / "src" / "bot4" / "net.py").write_text('HOST = "localhost"\n', encoding="utf-8")
    assert cli.main(["--root", str(git_repo), "security-scan", "--policy", policy]) == 0


@pytest.mark.e2e
def test_the_repository_itself_is_clean() -> None:
    policy = security_scan.load_policy(REPO / "ci" / "policy.toml")
    assert security_scan.scan(REPO, policy) == []

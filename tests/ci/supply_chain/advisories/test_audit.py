"""python -m ci audit: offline matching, ignores, strict pip-audit, yanked = deny."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from ci import cli
from ci.errors import GateError
from ci.gate.requirements import Pin, parse_lock
from ci.supply_chain import index
from ci.supply_chain.advisories import audit
from ci.supply_chain.advisories import online as online_audit
from ci.supply_chain.advisories.database import load_db

DATA = Path(__file__).parents[2] / "data" / "osv"
TODAY = dt.date(2026, 11, 30)
SIX = (
    "six==1.17.0 --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274 "
    "--hash=sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81\n"
)
H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64
LOCK = (
    f"urllib3==2.0.3 --hash=sha256:{H1}\n"
    f"py==1.11.0 --hash=sha256:{H2}\n"
    f"ansible==2.8.0b1 --hash=sha256:{H3}\n"
)
PIP_AUDIT = str(Path(sys.executable).parent / "pip-audit")


def policy_file(root: Path, body: str = "") -> Path:
    path = root / "ci" / "policy.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    locks = "" if "locks =" in body else 'locks = ["../locks/a.txt"]\n'
    path.write_text(f"[advisories]\n{locks}{body}", encoding="utf-8")
    return path


def repo(tmp_path: Path, lock: str = LOCK, body: str = "") -> Path:
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "a.txt").write_text(lock, encoding="utf-8")
    policy_file(tmp_path, body)
    return tmp_path


def test_policy_parsing(tmp_path: Path) -> None:
    path = policy_file(
        tmp_path,
        'yanked = "warn"\nmax-age-days = 7\ndb = "x.zip"\n'
        '[[advisories.ignore]]\nid = "CVE-1"\nreason = "r"\nexpires = 2027-01-31\n',
    )
    pol = audit.load_policy(path)
    assert (pol.yanked, pol.max_age_days, pol.db, pol.locks) == (
        "warn",
        7,
        tmp_path / "ci" / "x.zip",  # policy paths are relative to the policy file
        (tmp_path / "locks" / "a.txt",),
    )
    assert audit.load_policy(policy_file(tmp_path / "p")).db == audit.DEFAULT_DB
    assert audit.DEFAULT_DB.is_file()  # the snapshot ships with the toolkit
    assert pol.ignores == (audit.Ignore("CVE-1", "r", dt.date(2027, 1, 31)),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('yanked = "maybe"\n', "yanked must be"),
        ("max-age-days = 0\n", "max-age-days"),
        ("db = 3\n", "db must be a path"),
        ('ignore = [{ id = "X", reason = "r" }]\n', "expires must be a date"),
        ('ignore = [{ id = "X", expires = 2027-01-01 }]\n', "reason must be a non-empty string"),
        ('ignore = [{ id = "X", reason = "r", expires = "soon" }]\n', "expires must be a date"),
        ('ignore = "X"\n', "ignore must be an array of tables"),
        ('locks = "a"\n', "locks must be a list of strings"),
        ("[advisories\n", "malformed policy TOML"),
    ],
)
def test_bad_policy_is_one_line_error(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(GateError, match=message):
        audit.load_policy(policy_file(tmp_path, body))


def test_ignore_dates_accept_strings_and_datetimes(tmp_path: Path) -> None:
    path = policy_file(
        tmp_path,
        'ignore = [{ id = "A", reason = "r", expires = "2027-01-01" },'
        ' { id = "B", reason = "r", expires = 2027-01-01T10:00:00Z }]\n',
    )
    assert [i.expires for i in audit.load_policy(path).ignores] == [dt.date(2027, 1, 1)] * 2


def test_missing_policy(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="policy file not found"):
        audit.load_policy(tmp_path / "none.toml")
    path = tmp_path / "p.toml"
    path.write_text("advisories = 3\n", encoding="utf-8")
    with pytest.raises(GateError, match=r"\[advisories\] must be a table"):
        audit.load_policy(path)


def test_match_and_render() -> None:
    db = load_db(DATA)
    pins = parse_lock(LOCK, "a.txt")
    findings = audit.match(pins, db)
    assert [(f.name, f.advisory.id) for f in findings] == [
        ("urllib3", "PYSEC-2023-192"),
        ("py", "PYSEC-2022-42969"),
    ]  # ansible 2.8.0b1 sits between the fix (2.8.0a1) and the regression (2.8.0)
    line = findings[0].render()
    assert line.startswith("urllib3 2.0.3: PYSEC-2023-192 (CVE-2023-43804, GHSA-v845-jxx5-vc9f)")
    assert "severity 8.1 High" in line and "fixed in 1.26.17, 2.0.6" in line
    assert "severity unknown — no fixed version" in findings[1].render()


def test_ignores_expire_and_unused_ones_warn() -> None:
    db = load_db(DATA)
    findings = audit.match(parse_lock(LOCK, "a.txt"), db)
    ignores = [
        audit.Ignore("CVE-2023-43804", "no redirects in our use", dt.date(2027, 1, 1)),
        audit.Ignore("PYSEC-2022-42969", "old", dt.date(2026, 1, 1)),
        audit.Ignore("GHSA-none", "stale", dt.date(2027, 1, 1)),
    ]
    marked, failures, warnings = audit.apply_ignores(findings, ignores, TODAY)
    assert marked[0].ignore == ignores[0] and marked[1].ignore is None
    assert "IGNORED until 2027-01-01: no redirects in our use" in marked[0].render()
    assert failures == [
        "ignore of PYSEC-2022-42969 expired on 2026-01-01 (old): upgrade the package or renew "
        "the ignore with a new reason and date in the policy file"
    ]
    assert warnings == ["ignore of GHSA-none matches no finding; remove it from the policy file"]


def test_offline_report_counts() -> None:
    report = audit.Report()
    pol = audit.AuditPolicy(max_age_days=30)
    audit.offline(report, list(parse_lock(LOCK, "a.txt")), load_db(DATA), pol, TODAY)
    assert report.info[0].startswith(
        f"advisory DB: {DATA} (snapshot of unknown date; 5 records, 1 withdrawn)"
    )
    assert report.info[-1] == "offline: 3 pins checked, 2 vulnerable, 0 ignored"
    assert len(report.failures) == 2
    assert any("has no date" in w for w in report.warnings)  # undated: no SNAPSHOT.toml
    assert report.as_json()["failures"] == report.failures


def page(
    files: list[index.IndexFile], status: str | None = None, reason: str | None = None
) -> index.ProjectPage:
    return index.ProjectPage(
        "file:///idx/", canonicalize_name("demo"), True, tuple(files), status, reason
    )


def demo_pin(*hashes: str) -> Pin:
    (pin,) = parse_lock("demo==1.0 " + " ".join(f"--hash=sha256:{h}" for h in hashes), "l")
    return pin


def test_check_index_verdicts() -> None:
    ok = index.IndexFile("demo-1.0.tar.gz", "u", H1, None)
    yanked = index.IndexFile("demo-1.0-py3-none-any.whl", "u", H2, "broken")
    clean = audit.check_index(demo_pin(H1), [page([ok])], "deny")
    assert (clean.failures, clean.warnings) == ((), ())
    denied = audit.check_index(demo_pin(H1, H2), [page([ok, yanked])], "deny")
    assert denied.failures == (
        "demo 1.0 is yanked on file:///idx/ (demo-1.0-py3-none-any.whl: broken)",
    )
    warned = audit.check_index(
        demo_pin(H1, H2), [page([ok, index.IndexFile("demo-1.0.zip", "u", H2, "")])], "warn"
    )
    assert warned.warnings == (
        "demo 1.0 is yanked on file:///idx/ (demo-1.0.zip: no reason given)",
    )
    foreign = audit.check_index(demo_pin(H3), [page([ok])], "deny")
    assert foreign.failures == ("demo 1.0: no file the index serves matches the lock's hashes",)
    missing = audit.check_index(
        demo_pin(H1),
        [page([]), index.ProjectPage("x", canonicalize_name("demo"), False, (), None, None)],
        "deny",
    )
    assert "no configured index serves this release" in missing.failures[0]
    status = audit.check_index(
        demo_pin(H1), [page([ok], "archived", "moved"), page([ok], "quarantined")], "deny"
    )
    assert status.warnings == ("demo 1.0: project is archived on file:///idx/: moved",)
    assert status.failures == ("demo 1.0: project is quarantined on file:///idx/",)


def test_index_checks_unreachable_is_a_failure_unless_allowed() -> None:
    pins = [demo_pin(H1)]
    strict = audit.Report()
    audit.index_checks(
        strict, pins, {}, ["index x is not reachable: refused"], "deny", False, ["x"]
    )
    assert strict.failures == [
        "index x is not reachable: refused; fix the network/pip configuration "
        "or pass --allow-unreachable-index"
    ]
    lenient = audit.Report()
    audit.index_checks(lenient, pins, {}, ["index x is not reachable: refused"], "deny", True, [])
    assert lenient.failures == [] and "ignored: --allow-unreachable-index" in lenient.warnings[0]
    assert lenient.info == ["index: none configured (from pip's configuration)"]


def test_db_path_precedence(tmp_path: Path) -> None:
    configured = tmp_path / "ci" / "c.zip"
    assert audit.db_path(tmp_path, "/abs/db.zip", configured, {audit.DB_ENV: "e.zip"}) == Path(
        "/abs/db.zip"
    )
    assert audit.db_path(tmp_path, None, configured, {audit.DB_ENV: "e.zip"}) == tmp_path / "e.zip"
    assert audit.db_path(tmp_path, None, configured, {}) == configured


def test_lock_paths_given_then_policy_else_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    assert audit.lock_paths([a], [b]) == [a]
    assert audit.lock_paths([], [b]) == [b]
    with pytest.raises(GateError, match=r"^no locks to audit: pass --lock FILE \(repeatable\)$"):
        audit.lock_paths([], [])
    root = Path(__file__).resolve().parents[4]
    pins = audit.collect_pins([root / "locks" / "runtime.txt"])
    assert (canonicalize_name("numpy"), "2.4.6") in pins


def test_interpret_pip_audit_outputs() -> None:
    # stderr and JSON exactly as pip-audit 2.10 prints them for an index without JSON API.
    stderr = (
        "ERROR:pip_audit._cli:six: Dependency not found on PyPI and could not be audited: "
        "six (1.17.0)\n"
    )
    strict = online_audit.interpret("pypi", 1, stderr, None)
    assert strict.not_audited == (
        ("six", "Dependency not found on PyPI and could not be audited: six (1.17.0)"),
    )
    assert not strict.ok
    lenient = online_audit.interpret(
        "pypi",
        0,
        "",
        json.dumps({"dependencies": [{"name": "six", "skip_reason": "not found"}], "fixes": []}),
    )
    assert lenient.not_audited == (("six", "not found"),) and not lenient.ok
    vuln = online_audit.interpret(
        "osv",
        1,
        "",
        json.dumps(
            {
                "dependencies": [
                    {
                        "name": "urllib3",
                        "version": "2.0.3",
                        "vulns": [
                            {
                                "id": "PYSEC-2023-192",
                                "aliases": ["CVE-2023-43804"],
                                "fix_versions": ["2.0.6"],
                            }
                        ],
                    }
                ]
            }
        ),
    )
    assert vuln.vulns == (
        online_audit.OnlineVuln(
            "urllib3", "2.0.3", "PYSEC-2023-192", ("CVE-2023-43804",), ("2.0.6",)
        ),
    )
    crash = online_audit.interpret(
        "osv", 1, "Traceback …\nrequests.exceptions.ConnectionError: no DNS\n", None
    )
    assert crash.error == "pip-audit failed (exit 1): requests.exceptions.ConnectionError: no DNS"
    assert (
        online_audit.interpret("osv", 2, "", None).error == "pip-audit failed (exit 2): no output"
    )
    assert "unreadable pip-audit report" in str(online_audit.interpret("pypi", 0, "", "{").error)
    clean = online_audit.interpret(
        "pypi",
        0,
        "",
        json.dumps({"dependencies": [{"name": "six", "version": "1.17.0", "vulns": []}]}),
    )
    assert clean.ok


def test_pip_audit_command_is_strict_and_hashed(tmp_path: Path) -> None:
    argv = online_audit.command("pip-audit", [tmp_path / "a.txt"], "osv", tmp_path / "o.json")
    assert argv[:5] == [
        "pip-audit",
        "--strict",
        "--require-hashes",
        "--disable-pip",
        "--progress-spinner",
    ]
    assert argv[-6:] == ["-s", "osv", "-f", "json", "-o", str(tmp_path / "o.json")]
    with pytest.raises(GateError, match="unknown pip-audit service"):
        online_audit.run("pip-audit", [], "snyk")
    with pytest.raises(GateError, match="cannot run pip-audit"):
        online_audit.run(str(tmp_path / "no-pip-audit"), [], "pypi")


@pytest.mark.e2e
def test_real_pip_audit_never_passes_what_it_did_not_audit(tmp_path: Path) -> None:
    """The real pip-audit on one real pin: either it audited it (clean), or it is a failure.

    Here PyPI's per-version JSON API is not served, so pip-audit skips six; without
    --strict it would print "No known vulnerabilities found" and exit 0.
    """
    lock = tmp_path / "one.txt"
    lock.write_text(SIX, encoding="utf-8")
    result = online_audit.run(PIP_AUDIT, [lock], "pypi", timeout=120)
    if result.ok:  # a machine that reaches PyPI's JSON API
        assert result.vulns == () and result.not_audited == ()
    else:
        assert result.not_audited or result.error
        assert result.returncode != 0
        report = audit.Report()
        audit.online(
            report, "require", PIP_AUDIT, [lock], parse_lock(SIX, "x")[0], "pypi", [], tmp_path
        )
        assert report.failures and all(f.startswith("online: ") for f in report.failures)
        auto = audit.Report()
        audit.online(auto, "auto", PIP_AUDIT, [lock], parse_lock(SIX, "x")[0], "pypi", [], tmp_path)
        assert auto.failures == [] and "relying on the offline advisory DB" in auto.warnings[0]


def test_online_never_is_reported() -> None:
    report = audit.Report()
    audit.online(report, "never", "unused", [], demo_pin(H1), "pypi", [], Path())
    assert report.info == ["online: skipped (--online never)"]


def file_index(root: Path, yanked: bool) -> str:
    for name, version, digest in (
        ("urllib3", "2.0.3", H1),
        ("py", "1.11.0", H2),
        ("ansible", "2.8.0b1", H3),
    ):
        page_dir = root / "simple" / name
        page_dir.mkdir(parents=True)
        attr = ' data-yanked="regression"' if yanked and name == "py" else ""
        page_dir.joinpath("index.html").write_text(
            f'<a href="../../f/{name}-{version}.tar.gz#sha256={digest}"{attr}>x</a>',
            encoding="utf-8",
        )
    return (root / "simple").as_uri()


@pytest.fixture
def pip_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for key in list(os.environ):
        if key.startswith("PIP_") and key not in {"PIP_CONFIG_FILE"}:
            monkeypatch.delenv(key)
    return monkeypatch


def test_cli_audit_end_to_end(
    tmp_path: Path, pip_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repo(
        tmp_path,
        body='[[advisories.ignore]]\nid = "CVE-2023-43804"\nreason = "r"\nexpires = 2027-01-01\n',
    )
    pip_env.setenv("PIP_INDEX_URL", file_index(tmp_path / "idx", yanked=True))
    code = cli.main(
        [
            "--root",
            str(root),
            "audit",
            "--policy",
            "ci/policy.toml",
            "--db",
            str(DATA),
            "--online",
            "never",
            "--today",
            "2026-11-30",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert "auditing 3 pins from locks/a.txt" in out
    assert "urllib3 2.0.3: PYSEC-2023-192" in out and "IGNORED until 2027-01-01" in out
    assert "ci: error: py 1.11.0: PYSEC-2022-42969" in err
    assert "ci: error: py 1.11.0 is yanked on file://" in err
    assert "ci: error: audit: 2 problem(s)" in err
    assert f"ci: warning: advisory DB {DATA} has no date" in err


def test_cli_audit_passes_and_json(
    tmp_path: Path, pip_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repo(tmp_path, lock=f"ansible==2.8.0b1 --hash=sha256:{H3}\n")
    pip_env.setenv("PIP_INDEX_URL", file_index(tmp_path / "idx", yanked=False))
    pip_env.setenv(audit.DB_ENV, str(DATA))
    assert (
        cli.main(
            [
                "--root",
                str(root),
                "audit",
                "--policy",
                "ci/policy.toml",
                "--online",
                "never",
                "--today",
                "2024-02-20",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.endswith("audit: passed\n")
    assert (
        cli.main(
            [
                "--root",
                str(root),
                "audit",
                "--policy",
                "ci/policy.toml",
                "--online",
                "never",
                "--json",
                "--no-index-check",
                "--today",
                "2024-02-20",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    payload = json.loads(out[: out.rindex("}") + 1])
    assert payload["failures"] == [] and any(
        "skipped (--no-index-check)" in w for w in payload["warnings"]
    )


def test_cli_audit_bad_inputs(
    tmp_path: Path, pip_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repo(tmp_path, lock="")
    assert (
        cli.main(
            [
                "--root",
                str(root),
                "audit",
                "--policy",
                "ci/policy.toml",
                "--db",
                str(DATA),
                "--online",
                "never",
            ]
        )
        == 1
    )
    assert capsys.readouterr().err == "ci: error: no pins found in the locks; nothing to audit\n"
    root.joinpath("locks", "a.txt").write_text(LOCK, encoding="utf-8")
    assert (
        cli.main(
            [
                "--root",
                str(root),
                "audit",
                "--policy",
                "ci/policy.toml",
                "--db",
                str(DATA),
                "--today",
                "30.11.2026",
            ]
        )
        == 1
    )
    assert capsys.readouterr().err == "ci: error: --today expects YYYY-MM-DD, got '30.11.2026'\n"
    policy_file(
        root, 'ignore = [{ id = "PYSEC-2022-42969", reason = "r", expires = 2026-01-01 }]\n'
    )
    code = cli.main(
        [
            "--root",
            str(root),
            "audit",
            "--policy",
            "ci/policy.toml",
            "--db",
            str(DATA),
            "--online",
            "never",
            "--no-index-check",
            "--today",
            "2026-11-30",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "ci: error: ignore of PYSEC-2022-42969 expired on 2026-01-01 (r)" in err


@pytest.mark.e2e
def test_cli_audit_unreachable_index(
    tmp_path: Path, pip_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repo(tmp_path, lock=f"ansible==2.8.0b1 --hash=sha256:{H3}\n")
    pip_env.setenv("PIP_INDEX_URL", (tmp_path / "gone").as_uri())
    args = [
        "--root",
        str(root),
        "audit",
        "--policy",
        "ci/policy.toml",
        "--db",
        str(DATA),
        "--online",
        "never",
        "--today",
        "2024-02-20",
    ]
    assert cli.main(args) == 1
    assert (
        "not reachable: no such directory; fix the network/pip configuration"
        in capsys.readouterr().err
    )
    assert cli.main([*args, "--allow-unreachable-index"]) == 0


def test_beside_python_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli._beside_python("pip-audit") == PIP_AUDIT
    monkeypatch.setattr("ci.cli.sys.executable", "/nonexistent/python")
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(GateError, match="no-such-tool not found"):
        cli._beside_python("no-such-tool")


def _audit_quietly(root: Path, today: str) -> int:
    return cli.main(
        ["--root", str(root), "audit", "--policy", "ci/policy.toml", "--db", str(DATA),
         "--online", "never", "--no-index-check", "--today", today]
    )  # fmt: skip


def test_an_acknowledged_warning_is_one_dated_line_until_it_expires(
    tmp_path: Path, pip_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repo(
        tmp_path,
        lock=f"ansible==2.8.0b1 --hash=sha256:{H3}\n",
        body="acknowledge = [\n"
        '  { warning = "has no date", reason = "test data", expires = 2026-12-31 },\n'
        '  { warning = "status check skipped", reason = "no index", expires = 2026-12-31 },\n'
        '  { warning = "malformed advisory", reason = "fixtures", expires = 2026-12-31 },\n'
        "]\n",
    )
    assert _audit_quietly(root, "2026-11-30") == 0
    out, err = capsys.readouterr()
    assert err == ""  # green and quiet: no warning at all
    assert (
        "acknowledged until 2026-12-31: 1 warning(s) containing 'has no date' — test data"
        in out.splitlines()
    )
    assert out.splitlines()[-1] == "audit: passed"
    # after the date the same warnings fail the gate, and say what to do
    assert _audit_quietly(root, "2027-01-01") == 1
    err = capsys.readouterr().err
    assert f"ci: error: advisory DB {DATA} has no date" in err
    assert "(acknowledgement expired on 2026-12-31: fix it, or renew" in err
    assert "ci: error: audit: 4 problem(s)" in err


def test_an_acknowledgement_that_matches_nothing_is_a_warning_and_a_bad_one_is_refused(
    tmp_path: Path, pip_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repo(
        tmp_path,
        lock=f"ansible==2.8.0b1 --hash=sha256:{H3}\n",
        body='acknowledge = [{ warning = "nothing says", reason = "r", expires = 2026-12-31 }]\n',
    )
    assert _audit_quietly(root, "2026-11-30") == 0
    assert "acknowledgement of 'nothing says' matches no warning" in capsys.readouterr().err
    policy_file(root, 'acknowledge = [{ warning = "x", reason = "r" }]\n')
    assert _audit_quietly(root, "2026-11-30") == 1
    assert capsys.readouterr().err.strip() == (
        f"ci: error: {root / 'ci' / 'policy.toml'} [advisories] acknowledge #1: expires must be "
        "a date like 2027-01-31"
    )


def test_the_repository_policy_acknowledges_each_warning_with_a_future_date() -> None:
    pol = audit.load_policy(Path(__file__).parents[4] / "ci" / "policy.toml")
    assert pol.acknowledged, "the audit's known warnings are acknowledged in ci/policy.toml"
    for ack in pol.acknowledged:
        assert ack.reason and ack.expires > dt.date(2026, 12, 1)


def installed_dist(venv_dir: Path, name: str, version: str) -> None:
    """A distribution's .dist-info as pip writes it into a venv's site-packages."""
    site = next(venv_dir.glob("lib/python3*/site-packages"))
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "INSTALLER").write_text("pip\n", encoding="utf-8")
    (info / "RECORD").write_text(f"{info.name}/METADATA,,\n", encoding="utf-8")


def project_with_venv(tmp_path: Path, installers: dict[str, str], lock: str = SIX) -> Path:
    """A project: one hashed lock, and a real venv holding the given installer packages."""
    import venv

    (tmp_path / "requirements.txt").write_text(lock, encoding="utf-8")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp_path / ".venv")
    for name, version in installers.items():
        installed_dist(tmp_path / ".venv", name, version)
    return tmp_path


AUDIT_VENV = ["audit", "--lock", "requirements.txt", "--online", "never", "--no-index-check"]


@pytest.mark.e2e
def test_an_old_pip_in_the_venv_is_reported_as_an_installer_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: the locks are clean but the environment installing them has pip 23.2.1 and
    setuptools 65.5.0, both with PYSEC advisories in the committed snapshot: --venv fails."""
    root = project_with_venv(tmp_path, {"pip": "23.2.1", "setuptools": "65.5.0"})
    base = ["--root", str(root), *AUDIT_VENV]
    assert cli.main(base) == 0  # without --venv: only the lock, and the report says so
    out = capsys.readouterr().out
    assert "installer packages of the environment that installs them (pip, setuptools) are " in (
        out
    )
    assert "not audited (pass --venv to add them)" in out
    assert cli.main([*base, "--venv", ".venv"]) == 1
    out, err = capsys.readouterr()
    assert (
        "scope: the locked pins and the installer packages (pip, setuptools, wheel) of .venv"
        in (out)
    )
    assert "installer packages in .venv: pip 23.2.1, setuptools 65.5.0 (offline DB only" in out
    assert "offline: 1 pins and 2 installer packages checked" in out
    mark = "[installer package in .venv, not in the locks]"
    assert f"ci: error: pip 23.2.1 {mark}: PYSEC-2023-228 (CVE-2023-5752)" in err
    assert f"ci: error: setuptools 65.5.0 {mark}: PYSEC-2022-43012" in err
    assert "six" not in err


@pytest.mark.e2e
def test_a_current_pip_passes_and_a_locked_installer_is_audited_as_a_pin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setuptools = "setuptools==65.5.0 --hash=sha256:" + "4" * 64 + "\n"
    root = project_with_venv(
        tmp_path, {"pip": "25.3", "setuptools": "65.5.0", "wheel": "0.45.1"}, SIX + setuptools
    )
    assert cli.main(["--root", str(root), *AUDIT_VENV, "--venv", ".venv"]) == 1
    out, err = capsys.readouterr()
    assert "installer packages in .venv: pip 25.3, wheel 0.45.1 (offline DB only" in out
    # setuptools is in the lock: audited once, as a pin, with no installer mark
    assert "ci: error: setuptools 65.5.0: PYSEC-2022-43012" in err
    assert "installer package" not in err
    (tmp_path / "clean").mkdir()
    root2 = project_with_venv(tmp_path / "clean", {"pip": "25.3"})
    assert cli.main(["--root", str(root2), *AUDIT_VENV, "--venv", ".venv"]) == 0
    assert "installer packages in .venv: pip 25.3 (offline DB only" in capsys.readouterr().out


@pytest.mark.e2e
def test_every_venv_given_is_audited_and_the_vulnerable_one_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: the runner venv is clean but a second venv the gate also uses carries an old
    pip; --venv is repeatable and the finding names the venv it was found in."""
    root = project_with_venv(tmp_path, {"pip": "25.3"})
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(root / "session")
    installed_dist(root / "session", "pip", "23.2.1")
    argv = ["--root", str(root), *AUDIT_VENV, "--venv", ".venv", "--venv", "session"]
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert "(pip, setuptools, wheel) of .venv, session;" in out
    assert "installer packages in .venv: pip 25.3 (offline DB only" in out
    assert "installer packages in session: pip 23.2.1 (offline DB only" in out
    assert "offline: 1 pins and 2 installer packages checked, 1 vulnerable" in out
    assert "ci: error: pip 23.2.1 [installer package in session, not in the locks]: " in err
    assert ".venv, not in the locks" not in err


def test_a_venv_that_is_not_one_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "requirements.txt").write_text(SIX, encoding="utf-8")
    (tmp_path / "notavenv").mkdir()
    assert cli.main(["--root", str(tmp_path), *AUDIT_VENV, "--venv", "notavenv"]) == 1
    assert capsys.readouterr().err == (
        f"ci: error: {tmp_path}/notavenv: no lib/python3*/site-packages; is it a virtualenv?\n"
    )

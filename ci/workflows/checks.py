"""The GitHub Actions workflows, checked: zizmor, actionlint, and the project's own rules.

zizmor and actionlint judge a workflow in general. The project check holds bot4's promise
on top: a required check *is* a nox session. Every job runs ``scripts/gate -s <session>``
for a session ``noxfile.py`` defines; every other step is one of a short, named list of
auxiliary actions (pinned to a full commit SHA, with the release in a ``# vX.Y.Z``
comment) or auxiliary commands (matched exactly); containers are pinned by digest; every
job has a timeout and its own permissions under a top-level ``permissions: {}``. So
nothing in YAML decides a verdict that a developer could not reproduce with nox.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ci.errors import GateError


class WorkflowError(GateError):
    """A workflow file or a linter could not be read or run; the message says what to do."""


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in one file, printed as a single ``path:line: source: message`` line."""

    path: str
    line: int
    source: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source}: {self.message}"


# Actions a step may use besides the gate, and why each is needed.
ALLOWED_ACTIONS: Mapping[str, str] = {
    "actions/checkout": "the repository (persist-credentials: false)",
    "actions/setup-python": "the interpreter toolchain.lock pins",
    "actions/cache": "uv/pip/image download caches keyed on the lock hashes",
    "actions/upload-artifact": "reports, SBOMs, flamegraphs, drill reports, the image",
    "actions/download-artifact": "hand the built image to the jobs that scan and ship it",
    "github/codeql-action/upload-sarif": "the image scan in code scanning",
    "sigstore/cosign-installer": "cosign for the keyless signature",
    "actions/attest-build-provenance": "SLSA provenance attestation (OIDC)",
    "actions/attest-sbom": "SBOM attestation (OIDC)",
}

# The only commands a step may run besides the gate, matched exactly (after trimming).
AUX_COMMANDS: Mapping[str, str] = {
    # The interpreter version toolchain.lock pins, for actions/setup-python (stdlib only).
    "python-version": 'python3 -m ci.workflows python-version >> "$GITHUB_OUTPUT"',
    # System packages the tests and ops sessions use (as .ci/run installs them).
    "ubuntu-debs": (
        "sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install"
        " -y -qq --no-install-recommends softhsm2 prometheus prometheus-alertmanager"
    ),
    # Debian 12 container jobs (image, scan, deploy-check, release builds), run as root.
    "debian-debs": (
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"
        " --no-install-recommends ca-certificates git python3.11 python3.11-venv runc skopeo"
        " docker-registry gnupg softhsm2"
    ),
    # The same in the act jobs, with Debian's node: act runs the pinned JavaScript actions
    # (setup-python, cache) with the runner's node.
    "debian-debs-act": (
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"
        " --no-install-recommends ca-certificates git python3.11 python3.11-venv runc skopeo"
        " docker-registry gnupg softhsm2 nodejs"
    ),
    # Hand the first release build's digest to the jobs that rebuild and ship it.
    "image-digest": 'echo "digest=$(cat build/image/digest)" >> "$GITHUB_OUTPUT"',
    # Keyless signature with the workflow's OIDC identity (release only).
    "cosign-keyless": (
        'printf \'%s\' "$REGISTRY_TOKEN" | cosign login "$REGISTRY" --username'
        ' "$GITHUB_ACTOR" --password-stdin\ncosign sign --yes "$IMAGE@$DIGEST"'
    ),
}

GATE_RE = re.compile(r"scripts/gate -s (?P<session>[A-Za-z0-9_.-]+)(?: -- (?P<args>[^\n]+))?")
PIN_RE = re.compile(r"(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<ref>[^\s]+)")
SHA_RE = re.compile(r"[0-9a-f]{40}")
DIGEST_RE = re.compile(r"[^\s@]+@sha256:[0-9a-f]{64}")
VERSION_COMMENT_RE = re.compile(r"#\s*v\d+\.\d+\.\d+\b")
WORKFLOW_SUFFIXES = (".yml", ".yaml")
# The repository's own composite actions (the shared setup), checked like the workflows.
LOCAL_ACTIONS = ".github/actions"
ACTION_FILES = ("action.yml", "action.yaml")
# zizmor reads a GitHub token from these and then tries the network; the gate is offline.
TOKEN_VARS = ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")
ZIZMOR_FINDINGS_EXIT = range(10, 15)  # 10 + the highest severity found


# --- nox sessions ---------------------------------------------------------------------------


def _session_name(decorator: ast.expr, function: str) -> str | None:
    call = decorator if isinstance(decorator, ast.Call) else None
    target = call.func if call else decorator
    if not (
        isinstance(target, ast.Attribute)
        and target.attr == "session"
        and isinstance(target.value, ast.Name)
        and target.value.id == "nox"
    ):
        return None
    for keyword in call.keywords if call else ():
        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    return function


def nox_sessions(noxfile: Path) -> frozenset[str]:
    """The session names noxfile.py defines (``@nox.session``, honouring ``name=``).

    Read statically, so checking workflows neither imports the noxfile nor needs nox.
    """
    try:
        tree = ast.parse(noxfile.read_text(encoding="utf-8"), filename=str(noxfile))
    except OSError as exc:
        raise WorkflowError(f"cannot read {noxfile}: {exc.strerror}; pass --noxfile") from None
    except SyntaxError as exc:
        raise WorkflowError(f"{noxfile}:{exc.lineno}: not valid Python ({exc.msg})") from None
    return frozenset(
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        for decorator in node.decorator_list
        if (name := _session_name(decorator, node.name)) is not None
    )


# --- YAML nodes (kept as nodes for their line numbers) --------------------------------------


def _get(node: Node | None, key: str) -> Node | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key and isinstance(v, Node):
                return v
    return None


def _items(node: Node | None) -> Iterator[tuple[str, Node]]:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and isinstance(v, Node):
                yield str(k.value), v


def _scalar(node: Node | None) -> str | None:
    return str(node.value) if isinstance(node, ScalarNode) else None


_EMPTY = ScalarNode("tag:yaml.org,2002:null", "")


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def compose(path: Path) -> Node | None:
    """The workflow's YAML node tree (None for an empty file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowError(f"cannot read {path}: {exc.strerror}") from None
    try:
        node: Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise WorkflowError(f"{path}{where}: {problem}") from None
    return node


# --- the project check ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    path: str
    lines: Sequence[str]
    sessions: frozenset[str]
    root: Path = Path()

    def finding(self, node: Node, rule: str, message: str) -> Finding:
        return Finding(self.path, _line(node), f"bot4[{rule}]", message)


def _check_uses(ctx: _Context, node: Node, where: str) -> list[Finding]:
    uses = _scalar(node) or ""
    if uses.startswith("./"):
        local = ctx.root / uses.removeprefix("./")
        if any((local / name).is_file() for name in ACTION_FILES) and local.is_relative_to(
            ctx.root / LOCAL_ACTIONS
        ):
            return []
        return [
            ctx.finding(node, "local", f"{where}: {uses} is not an action under ./{LOCAL_ACTIONS}/")
        ]
    if uses.startswith("docker://"):
        if DIGEST_RE.fullmatch(uses.removeprefix("docker://")):
            return []
        return [ctx.finding(node, "pin", f"{where}: {uses} is not pinned by @sha256 digest")]
    match = PIN_RE.fullmatch(uses)
    if match is None:
        return [ctx.finding(node, "pin", f"{where}: cannot read uses: {uses!r}")]
    problems = []
    if not SHA_RE.fullmatch(match["ref"]):
        problems.append(
            ctx.finding(node, "pin", f"{where}: {uses} is not pinned to a full 40-hex commit SHA")
        )
    elif not VERSION_COMMENT_RE.search(ctx.lines[_line(node) - 1]):
        problems.append(
            ctx.finding(
                node, "pin", f"{where}: {uses} has no '# vX.Y.Z' comment naming the release"
            )
        )
    if match["action"] not in ALLOWED_ACTIONS:
        problems.append(
            ctx.finding(
                node,
                "allowlist",
                f"{where}: {match['action']} is not an allowed auxiliary action "
                f"(allowed: {', '.join(sorted(ALLOWED_ACTIONS))})",
            )
        )
    return problems


def _check_run(ctx: _Context, node: Node, where: str) -> tuple[list[Finding], bool]:
    command = (_scalar(node) or "").strip()
    if "${{" in command:
        return [ctx.finding(node, "run", f"{where}: ${{{{ }}}} in run:; pass it via env:")], False
    match = GATE_RE.fullmatch(command)
    if match is not None:
        if match["session"] not in ctx.sessions:
            return [
                ctx.finding(
                    node,
                    "session",
                    f"{where}: nox session {match['session']!r} is not defined in noxfile.py",
                )
            ], True
        return [], True
    if command in AUX_COMMANDS.values():
        return [], False
    first = command.splitlines()[0] if command else ""
    return [
        ctx.finding(
            node,
            "run",
            f"{where}: run: {first!r} is neither 'scripts/gate -s <session> [-- ARGS]' "
            "nor an allowed auxiliary command",
        )
    ], False


def _check_image(ctx: _Context, node: Node | None, where: str) -> list[Finding]:
    image = _scalar(_get(node, "image")) if isinstance(node, MappingNode) else _scalar(node)
    if node is None or image is None or DIGEST_RE.fullmatch(image):
        return []
    return [ctx.finding(node, "pin", f"{where}: image {image} is not pinned by @sha256 digest")]


def _check_job(ctx: _Context, job_id: str, job: Node) -> list[Finding]:
    where = f"job {job_id}"
    if _get(job, "uses") is not None:
        return [ctx.finding(job, "job", f"{where} calls a reusable workflow; run a nox session")]
    problems: list[Finding] = []
    for key in ("timeout-minutes", "permissions"):
        if _get(job, key) is None:
            problems.append(ctx.finding(job, "job", f"{where} sets no {key}"))
    problems += _check_image(ctx, _get(job, "container"), f"{where} container")
    for name, service in _items(_get(job, "services")):
        problems += _check_image(ctx, service, f"{where} service {name}")
    gates = 0
    steps = _get(job, "steps")
    for index, step in enumerate(steps.value if isinstance(steps, SequenceNode) else []):
        at = f"{where} step {index + 1}"
        uses, run = _get(step, "uses"), _get(step, "run")
        if uses is not None:
            problems += _check_uses(ctx, uses, at)
        elif run is not None:
            found, is_gate = _check_run(ctx, run, at)
            problems += found
            gates += is_gate
        else:
            problems.append(ctx.finding(step, "run", f"{at} has neither uses: nor run:"))
    if gates == 0:
        problems.append(
            ctx.finding(job, "job", f"{where} runs no nox session (scripts/gate -s <session>)")
        )
    return problems


def check_action(path: Path, root: Path, display: str | None = None) -> list[Finding]:
    """The project's rules over one of the repository's composite actions.

    Its steps obey the workflows' rules (pinned, allow-listed actions; only the auxiliary
    commands), and a verdict stays in the jobs: a composite action runs no nox session.
    """
    node = compose(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    ctx = _Context(display or str(path), lines, frozenset(), root.resolve())
    runs = _get(node, "runs")
    if _scalar(_get(runs, "using")) != "composite":
        return [ctx.finding(runs or node or _EMPTY, "action", "not a composite action")]
    problems: list[Finding] = []
    steps = _get(runs, "steps")
    for index, step in enumerate(steps.value if isinstance(steps, SequenceNode) else []):
        at = f"step {index + 1}"
        uses, run = _get(step, "uses"), _get(step, "run")
        if uses is not None:
            problems += _check_uses(ctx, uses, at)
        elif run is not None:
            found, is_gate = _check_run(ctx, run, at)
            if is_gate:
                found = [ctx.finding(run, "run", f"{at}: a composite action runs no nox session")]
            problems += found
            if _get(step, "shell") is None:
                problems.append(ctx.finding(step, "run", f"{at}: run: needs shell: bash"))
        else:
            problems.append(ctx.finding(step, "run", f"{at} has neither uses: nor run:"))
    return problems


def local_actions(root: Path) -> list[Path]:
    """The composite actions under .github/actions (one directory each)."""
    base = root / LOCAL_ACTIONS
    if not base.is_dir():
        return []
    return sorted(
        path
        for directory in base.iterdir()
        for name in ACTION_FILES
        if (path := directory / name).is_file()
    )


def check_workflow(
    path: Path, sessions: frozenset[str], display: str | None = None, root: Path | None = None
) -> list[Finding]:
    """The project's rules over one workflow file."""
    root_node = compose(path)
    ctx = _Context(
        display or str(path),
        path.read_text(encoding="utf-8").splitlines(),
        sessions,
        (root or path.parent.parent.parent).resolve(),
    )
    if not isinstance(root_node, MappingNode):
        return [Finding(ctx.path, 1, "bot4[workflow]", "not a workflow (expected a mapping)")]
    problems: list[Finding] = []
    permissions = _get(root_node, "permissions")
    if not (isinstance(permissions, MappingNode) and not permissions.value):
        problems.append(
            ctx.finding(permissions or root_node, "permissions", "top-level permissions must be {}")
        )
    triggers = _get(root_node, "on")
    names = [k for k, _ in _items(triggers)] + [
        str(_scalar(item))
        for item in (triggers.value if isinstance(triggers, SequenceNode) else [])
    ]
    if "pull_request_target" in names or _scalar(triggers) == "pull_request_target":
        problems.append(
            ctx.finding(triggers or root_node, "trigger", "pull_request_target is not allowed")
        )
    if _get(root_node, "concurrency") is None:
        problems.append(ctx.finding(root_node, "concurrency", "no concurrency group"))
    jobs = list(_items(_get(root_node, "jobs")))
    if not jobs:
        problems.append(ctx.finding(root_node, "job", "no jobs"))
    for job_id, job in jobs:
        problems += _check_job(ctx, job_id, job)
    return problems


# --- the linters ----------------------------------------------------------------------------


def find_tool(name: str) -> str:
    """A tool from the locked environment: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise WorkflowError(
            f"{name} not found beside {sys.executable} or on PATH; "
            "run through the gate (scripts/gate -s workflows), which installs it from the lock"
        )
    return found


def _run(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603  # nosec B603
            list(argv), cwd=cwd, env=dict(env), capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise WorkflowError(f"cannot run {argv[0]}: {exc.strerror}") from None


def _tool_failure(tool: str, result: subprocess.CompletedProcess[str]) -> WorkflowError:
    lines = []
    for line in result.stderr.splitlines():
        if line.startswith("Stack backtrace"):
            break
        if line.strip() and " INFO " not in line:
            lines.append(line.strip())
    detail = "; ".join(lines) or "no output"
    return WorkflowError(f"{tool} failed (exit {result.returncode}): {detail}")


def offline_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment without GitHub tokens, so zizmor never tries the network."""
    return {k: v for k, v in environ.items() if k not in TOKEN_VARS}


def _dig(value: object, *keys: str | int) -> object:
    """value[k1][k2]… through dicts and lists; None where a step is missing."""
    for key in keys:
        if isinstance(key, str) and isinstance(value, dict):
            value = value.get(key)
        elif isinstance(key, int) and isinstance(value, list) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return None
    return value


def _relative(path: str, root: Path) -> str:
    candidate = Path(path)
    if candidate.is_absolute() and candidate.is_relative_to(root):
        return str(candidate.relative_to(root))
    return path


def _zizmor_finding(entry: object, root: Path) -> Finding:
    locations = _dig(entry, "locations")
    primary = next(
        (
            loc
            for loc in (locations if isinstance(locations, list) else [])
            if _dig(loc, "symbolic", "kind") == "Primary"
        ),
        None,
    )
    path = _dig(primary, "symbolic", "key", "Local", "verbatim_path")
    row = _dig(primary, "concrete", "location", "start_point", "row")
    annotation = _dig(primary, "symbolic", "annotation")
    message = str(_dig(entry, "desc") or "finding") + (f" ({annotation})" if annotation else "")
    return Finding(
        _relative(str(path or "?"), root),
        row + 1 if isinstance(row, int) else 0,
        f"zizmor[{_dig(entry, 'ident') or '?'}]",
        message,
    )


def run_zizmor(
    zizmor: str, inputs: Sequence[Path], root: Path, environ: Mapping[str, str]
) -> list[Finding]:
    """zizmor --offline (pedantic persona) over the inputs; one finding per audit result."""
    argv = [zizmor, "--offline", "--persona=pedantic", "--format=json", "--no-progress"]
    result = _run([*argv, *map(str, inputs)], root, offline_env(environ))
    if result.returncode != 0 and result.returncode not in ZIZMOR_FINDINGS_EXIT:
        raise _tool_failure("zizmor", result)
    try:
        entries = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        raise WorkflowError("zizmor printed no JSON; is it zizmor >= 1.0?") from None
    return [
        _zizmor_finding(entry, root)
        for entry in (entries if isinstance(entries, list) else [])
        if not _dig(entry, "ignored")
    ]


def run_actionlint(
    actionlint: str, files: Sequence[Path], root: Path, environ: Mapping[str, str]
) -> list[Finding]:
    """actionlint over the workflow files, without shellcheck/pyflakes (same result anywhere)."""
    argv = [actionlint, "-format", "{{json .}}", "-shellcheck=", "-pyflakes=", "-no-color"]
    result = _run([*argv, *map(str, files)], root, environ)
    if result.returncode not in (0, 1):
        raise _tool_failure("actionlint", result)
    try:
        entries = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        raise WorkflowError("actionlint printed no JSON; is it actionlint >= 1.6?") from None
    return [
        Finding(
            _relative(str(_dig(e, "filepath") or "?"), root),
            line if isinstance(line := _dig(e, "line"), int) else 0,
            f"actionlint[{_dig(e, 'kind') or '?'}]",
            str(_dig(e, "message") or "finding"),
        )
        for e in (entries if isinstance(entries, list) else [])
    ]


# --- everything -----------------------------------------------------------------------------


def workflow_files(paths: Sequence[Path]) -> list[Path]:
    """The workflow files named, or found directly in the named directories."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in WORKFLOW_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise WorkflowError(f"{path} does not exist; pass workflow files or directories")
    if not files:
        raise WorkflowError(f"no workflow files (*.yml, *.yaml) in {', '.join(map(str, paths))}")
    return files


@dataclass(frozen=True)
class Tools:
    """The linter executables (from the lock: beside this interpreter)."""

    zizmor: str
    actionlint: str


def check(
    root: Path,
    paths: Sequence[Path],
    sessions: frozenset[str],
    tools: Tools,
    extra_zizmor: Sequence[Path] = (),
    environ: Mapping[str, str] | None = None,
) -> list[Finding]:
    """zizmor, actionlint and the project check over the workflows; sorted findings."""
    env = dict(os.environ if environ is None else environ)
    root = root.resolve()
    files = [path.resolve() for path in workflow_files(paths)]
    actions = local_actions(root)
    findings = run_zizmor(tools.zizmor, [*files, *actions, *extra_zizmor], root, env)
    findings += run_actionlint(tools.actionlint, files, root, env)
    for path in files:
        findings += check_workflow(path, sessions, _relative(str(path), root), root)
    for path in actions:
        findings += check_action(path, root, _relative(str(path), root))
    return sorted(set(findings))

"""python -m ci licenses: metadata → SPDX, AND/OR/WITH evaluation, policy, bad inputs."""

from __future__ import annotations

import json
from email.message import Message
from pathlib import Path

import pytest

from ci import cli
from ci.errors import GateError
from ci.supply_chain import licenses

NUMPY_LICENSE = """Copyright (c) 2005-2025, NumPy Developers.
----
This binary distribution of NumPy also bundles the following software:

Name: OpenBLAS
Files: numpy.libs/libscipy_openblas*.so
License: BSD-3-Clause

Name: GCC runtime library
Files: numpy.libs/libgfortran*.so
License: GPL-3.0-or-later WITH GCC-exception-3.1

Name: junk
License: not an SPDX expression at all
"""
POLICY = """
[licenses]
allow = ["MIT", "Apache-2.0", "BSD-3-Clause", "BSD-2-Clause"]
copyleft = "deny"

[[licenses.exceptions]]
package = "numpy"
license = "GPL-3.0-or-later WITH GCC-exception-3.1"
reason = "gfortran runtime, dynamically linked, GCC runtime library exception"

[[licenses.exceptions]]
package = "python-debian"
license = "GPL-2.0-or-later"
reason = "gate tool, never shipped"
scope = "toolchain"

[[licenses.exceptions]]
package = "unused"
license = "MIT"
reason = "stale"

[[licenses.clarify]]
package = "Jinja2"
version = "3.1.6"
expression = "BSD-3-Clause"
reason = "LICENSE.txt is the 3-clause text"

[[licenses.clarify]]
package = "jinja2"
version = "2.0"
expression = "BSD-3-Clause"
reason = "old"
"""


def meta(**fields: str | list[str]) -> Message:
    message = Message()
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            message[key.replace("_", "-")] = item
    return message


def write_policy(root: Path, text: str = POLICY) -> Path:
    path = root / "ci" / "policy.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def dist(
    site: Path, name: str, version: str, headers: str, files: dict[str, str] | None = None
) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    extra = "".join(f"License-File: {rel}\n" for rel in files or {})
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n{headers}{extra}",
        encoding="utf-8",
    )
    for rel, text in (files or {}).items():
        target = info / "licenses" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"License_Expression": "mit OR apache-2.0", "License": "GPL"},
            ("MIT OR Apache-2.0", "License-Expression"),
        ),
        ({"License": "Apache License 2.0"}, ("Apache-2.0", "License field")),
        ({"License": "BSD-3-Clause"}, ("BSD-3-Clause", "License field")),
        (
            {
                "License": "MIT License",
                "Classifier": ["License :: OSI Approved :: Apache Software License"],
            },
            ("MIT", "License field"),
        ),
        (
            {"License": "UNKNOWN", "Classifier": ["License :: OSI Approved :: ISC License (ISCL)"]},
            ("ISC", "classifiers"),
        ),
        (
            {
                "License": "Dual License",
                "Classifier": [
                    "License :: OSI Approved :: MIT License",
                    "License :: OSI Approved :: Apache Software License",
                    "Programming Language :: Python",
                ],
            },
            ("MIT AND Apache-2.0", "classifiers"),
        ),
        (
            {"License": "BSD", "Classifier": ["License :: OSI Approved :: BSD License"]},
            (None, "none usable"),
        ),
        ({"License": "x" * 300}, (None, "none usable")),
        ({}, (None, "none usable")),
    ],
)
def test_declared_order(
    fields: dict[str, str | list[str]], expected: tuple[str | None, str]
) -> None:
    found = licenses.declared(meta(**fields))
    assert (found.expression, found.source) == expected


def test_bundled_licences_from_licence_files() -> None:
    files = [licenses.LicenceFile(f"numpy-2.4.6.dist-info/LICENSE{n}", NUMPY_LICENSE) for n in "12"]
    found = licenses.declared(meta(License_Expression="BSD-3-Clause"), files)
    assert [(b.expression, b.where) for b in found.bundled] == [
        ("BSD-3-Clause", "numpy-2.4.6.dist-info/LICENSE1 (License: line)"),
        (
            "GPL-3.0-or-later WITH GCC-exception-3.1",
            "numpy-2.4.6.dist-info/LICENSE1 (License: line)",
        ),
        ("BSD-3-Clause", "numpy-2.4.6.dist-info/LICENSE2 (License: line)"),
        (
            "GPL-3.0-or-later WITH GCC-exception-3.1",
            "numpy-2.4.6.dist-info/LICENSE2 (License: line)",
        ),
    ]


def test_evaluate_and_or_with(tmp_path: Path) -> None:
    pol = licenses.load_policy(write_policy(tmp_path))
    used: set[licenses.PolicyException] = set()
    assert licenses.evaluate("MIT OR GPL-3.0-only", "x", pol, "runtime", used) == (
        True,
        ["allowed"],
    )
    ok, why = licenses.evaluate("MIT AND GPL-3.0-only", "x", pol, "runtime", used)
    assert not ok and why == [
        "GPL-3.0-only is copyleft (copyleft = deny); add an exception with a reason"
    ]
    ok, why = licenses.evaluate("Zlib OR LGPL-2.1-only", "x", pol, "runtime", used)
    assert not ok and why == [
        "Zlib is not in allow",
        "LGPL-2.1-only is copyleft (copyleft = deny); add an exception with a reason",
    ]
    assert licenses.evaluate("Apache-2.0 WITH LLVM-exception", "x", pol, "runtime", used)[0]
    ok, why = licenses.evaluate(
        "GPL-3.0-or-later WITH GCC-exception-3.1", "numpy", pol, "runtime", used
    )
    assert ok and why[0].startswith("exception: gfortran runtime")
    # A toolchain-scoped exception does not hold once the package ships.
    assert licenses.evaluate("GPL-2.0-or-later", "python-debian", pol, "toolchain", used)[0]
    assert not licenses.evaluate("GPL-2.0-or-later", "python-debian", pol, "runtime", used)[0]
    permissive = licenses.LicensePolicy(frozenset({"GPL-3.0-only"}), "allow", (), ())
    assert licenses.evaluate("GPL-3.0-only", "x", permissive, "runtime", used)[0]


def test_environment_table_and_verdicts(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist(
        site,
        "numpy",
        "2.4.6",
        "License-Expression: BSD-3-Clause AND MIT\n",
        {"LICENSE.txt": NUMPY_LICENSE},
    )
    dist(site, "gplonly", "1.0", "License-Expression: GPL-3.0-only\n")
    dist(site, "nolicence", "0.1", "")
    dist(site, "Jinja2", "3.1.6", "Classifier: License :: OSI Approved :: BSD License\n")
    dist(site, "python-debian", "1.1.1", "License-Expression: GPL-2.0-or-later\n")
    dist(site, "bad-expr", "1.0", "License-Expression: MIT AND\n")
    pol = licenses.load_policy(write_policy(tmp_path))
    rows, warnings = licenses.check_environment(site, pol, {"numpy", "gplonly"})
    by_name = {r.package: r for r in rows}
    assert [r.package for r in rows] == [
        "bad-expr",
        "gplonly",
        "Jinja2",
        "nolicence",
        "numpy",
        "python-debian",
    ]
    numpy = by_name["numpy"]
    assert numpy.verdict == "allow" and numpy.scope == "runtime"
    assert (
        numpy.expression == "BSD-3-Clause AND MIT + bundled BSD-3-Clause"
        " + bundled GPL-3.0-or-later WITH GCC-exception-3.1"
    )
    assert numpy.reason.startswith(
        "bundled GPL-3.0-or-later WITH GCC-exception-3.1: exception: gfortran"
    )
    gpl = by_name["gplonly"]
    assert (gpl.verdict, gpl.reason) == (
        "deny",
        "GPL-3.0-only is copyleft (copyleft = deny); add an exception with a reason",
    )
    nolic = by_name["nolicence"]
    assert (
        nolic.verdict == "deny"
        and "add a [[licenses.clarify]] entry for nolicence 0.1" in nolic.reason
    )
    assert by_name["bad-expr"].verdict == "deny"
    jinja = by_name["Jinja2"]
    assert (jinja.verdict, jinja.source) == ("allow", "clarify: LICENSE.txt is the 3-clause text")
    assert by_name["python-debian"].verdict == "allow"
    assert warnings == [
        "exception for unused (MIT) is not used; remove it from the policy file",
        "clarify entry for jinja2 2.0 matches no installed release; update or remove it in "
        "the policy file",
    ]
    table = licenses.render(rows)
    assert table.splitlines()[0].split() == [
        "package",
        "version",
        "licence",
        "verdict",
        "reason",
        "source",
    ]
    assert licenses.rows_json(rows, warnings)["denied"] == 3
    assert licenses.render([]).startswith("package")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[licenses\n", "malformed policy TOML"),
        ('[licenses]\nallow = ["MIT License"]\n', "'MIT License' is not an SPDX licence id"),
        ('[licenses]\ncopyleft = "warn"\n', 'copyleft must be "deny" or "allow"'),
        (
            '[licenses]\nexceptions = [{ package = "a", license = "Foo", reason = "r" }]\n',
            "'Foo' is not a valid SPDX",
        ),
        (
            '[licenses]\nexceptions = [{ package = "a", license = "MIT", '
            'reason = "r", scope = "x" }]\n',
            "scope must be",
        ),
        (
            '[licenses]\nexceptions = [{ package = "a", license = "MIT" }]\n',
            "reason must be a non-empty string",
        ),
        (
            '[licenses]\nclarify = [{ package = "a", version = "1", '
            'expression = "MIT OR", reason = "r" }]\n',
            "'MIT OR' is not a valid SPDX",
        ),
    ],
)
def test_bad_policy(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(GateError, match=message):
        licenses.load_policy(write_policy(tmp_path, text))


def lock_repo(root: Path) -> None:
    (root / "locks").mkdir()
    (root / "locks" / "runtime.txt").write_text(
        "gplonly==1.0 --hash=sha256:" + "a" * 64 + "\n", encoding="utf-8"
    )
    (root / "toolchain.lock").write_text(
        'schema = 1\ninputs_sha256 = "0"\n[python]\nimplementation = "cpython"\nversion = "3.11"\n'
        'pointer_bits = 64\nplatform = "x86_64-unknown-linux-gnu"\n'
        '[locks.runtime]\npath = "locks/runtime.txt"\nsha256 = "0"\ngoverns = "image"\n',
        encoding="utf-8",
    )


def venv(root: Path) -> Path:
    site = root / "venv" / "lib" / "python3.11" / "site-packages"
    (root / "venv" / "pyvenv.cfg").parent.mkdir(parents=True)
    (root / "venv" / "pyvenv.cfg").write_text("version_info = 3.11.7\n", encoding="utf-8")
    site.mkdir(parents=True)
    return site


def run_licenses(root: Path, *extra: str) -> int:
    """bot4's way of calling it: its policy, its lock for the source check and the scope."""
    return cli.main(
        ["--root", str(root), "licenses", "--venv", str(root / "venv"), "--policy",
         "ci/policy.toml", "--lock", "locks/runtime.txt", "--runtime-lock", "locks/runtime.txt",
         *extra]
    )  # fmt: skip


def test_cli_licenses_gpl_dependency_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_policy(tmp_path)
    lock_repo(tmp_path)
    site = venv(tmp_path)
    dist(site, "gplonly", "1.0", "License-Expression: GPL-3.0-only\n")
    dist(site, "nometa", "2.0", "")
    code = run_licenses(tmp_path)
    out, err = capsys.readouterr()
    assert code == 1
    assert "gplonly" in out and "deny" in out
    assert (
        "ci: error: licence: gplonly 1.0: GPL-3.0-only is copyleft (copyleft = deny); "
        "add an exception with a reason\n" in err
    )
    assert (
        "ci: error: licence: nometa 2.0: no usable licence metadata; "
        "add a [[licenses.clarify]] entry" in err
    )


def test_cli_licenses_json_and_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_policy(tmp_path)
    lock_repo(tmp_path)
    site = venv(tmp_path)
    dist(site, "fine", "1.0", "License-Expression: MIT\n")
    assert run_licenses(tmp_path) == 0
    assert "licenses: 1 distributions allowed; sources: 1 locks clean" in capsys.readouterr().out
    (tmp_path / "locks" / "runtime.txt").write_text(
        "--extra-index-url https://mirror.invalid/simple\nfine==1.0 --hash=sha256:"
        + "a" * 64
        + "\n",
        encoding="utf-8",
    )
    assert run_licenses(tmp_path, "--json") == 1
    out, err = capsys.readouterr()
    payload = json.loads(out)
    assert payload["denied"] == 0 and payload["packages"][0]["package"] == "fine"
    assert payload["sources"] == [
        f"{tmp_path}/locks/runtime.txt:1: option '--extra-index-url' is not allowed in a lock"
    ]
    assert "ci: error: source: " in err


def test_cli_licenses_empty_venv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_policy(tmp_path)
    lock_repo(tmp_path)
    venv(tmp_path)
    assert run_licenses(tmp_path) == 1
    assert "no installed distributions found" in capsys.readouterr().err


@pytest.mark.e2e
def test_repository_policy_passes_this_environment() -> None:
    """The committed policy over the venv running the tests (installed from the lock)."""
    repo = Path(__file__).resolve().parents[3]
    pol = licenses.load_policy(repo / "ci" / "policy.toml")
    import sysconfig

    rows, _ = licenses.check_environment(Path(sysconfig.get_paths()["purelib"]), pol, {"numpy"})
    denied = [f"{r.package}: {r.reason}" for r in rows if r.verdict == "deny"]
    assert denied == []
    numpy = next(r for r in rows if r.package == "numpy")
    assert "GPL-3.0-or-later WITH GCC-exception-3.1" in numpy.expression


MPL = (  # libzmq's notice: the MPL-2.0 standard header (Exhibit A)
    "This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. "
    "If a copy of the MPL was not distributed with this file, You can obtain one at "
    "http://mozilla.org/MPL/2.0/.\n"
)
ISC_TEXT = (
    "Permission to use, copy, modify, and/or distribute this software for any purpose with or "
    "without fee is hereby granted, provided that the above copyright notice and this "
    "permission notice appear in all copies.\n\n"
    'THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO '
    "THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO "
    "EVENT SHALL THE AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL "
    "DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER "
    "IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN "
    "CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.\n"
)


def test_every_licence_file_is_read_not_only_license_file_lines(tmp_path: Path) -> None:
    """A pyzmq-shaped wheel: no License-File line, licences of bundled libraries under
    .dist-info/licenses/licenses/, a vendored LICENSE, and names that only look like one."""
    site = tmp_path / "site"
    info = site / "zmqlike-1.0.dist-info"
    files = {
        f"{info.name}/licenses/LICENSE.md": "BSD 3-Clause License\n\nCopyright (c) 2009\n",
        f"{info.name}/licenses/licenses/LICENSE.zeromq.txt": MPL,
        f"{info.name}/licenses/licenses/LICENSE.libsodium.txt": ISC_TEXT,
        "zmqlike/_vendor/thing/LICENSE": "The MIT License (MIT)\n",
        "zmqlike/licenses_app.py": MPL,  # code, not a licence file
        "zmqlike.libs/libzmq.so": MPL,  # a binary
        "zmqlike/NOTICE": "nothing recognisable here\n",
        "zmqlike/LICENSE.weird": "Some licence nobody knows\n",
    }
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")
    (info / "METADATA").write_text(
        "Metadata-Version: 2.4\nName: zmqlike\nVersion: 1.0\nLicense-Expression: BSD-3-Clause\n",
        encoding="utf-8",
    )
    (info / "RECORD").write_text(
        "".join(f"{rel},,\n" for rel in files) + "../../bin/outside,,\n", encoding="utf-8"
    )
    pol = licenses.load_policy(
        write_policy(tmp_path, '[licenses]\nallow = ["BSD-3-Clause", "ISC", "MIT"]\n')
    )
    (row,) = licenses.check_environment(site, pol, None)[0]
    assert (row.verdict, row.expression) == (
        "deny",
        "BSD-3-Clause + bundled ISC + bundled MPL-2.0 + bundled MIT",
    )
    assert row.source == (
        "License-Expression; bundled ISC from zmqlike-1.0.dist-info/licenses/licenses/"
        "LICENSE.libsodium.txt, MPL-2.0 from zmqlike-1.0.dist-info/licenses/licenses/"
        "LICENSE.zeromq.txt, MIT from zmqlike/_vendor/thing/LICENSE; licence text not "
        "recognised (read it): zmqlike/LICENSE.weird"
    )
    assert row.reason == (
        "bundled MPL-2.0: MPL-2.0 is copyleft (copyleft = deny); add an exception with a reason"
    )


def test_licence_files_without_record_and_the_own_file_as_the_source(tmp_path: Path) -> None:
    """No RECORD: the License-File entries are read; with only a 'BSD License' classifier
    the verdict comes from the package's own licence file, and says so."""
    site = tmp_path / "site"
    dist(
        site,
        "oldbsd",
        "1.0",
        "Classifier: License :: OSI Approved :: BSD License\n",
        {"LICENSE": "BSD 2-Clause License\n\nCopyright (c) 2018\n"},
    )
    pol = licenses.load_policy(write_policy(tmp_path, '[licenses]\nallow = ["BSD-2-Clause"]\n'))
    (row,) = licenses.check_environment(site, pol, None)[0]
    assert (row.verdict, row.expression, row.source) == (
        "allow",
        "BSD-2-Clause",
        "licence file oldbsd-1.0.dist-info/licenses/LICENSE (heading)",
    )
    big = site / "oldbsd-1.0.dist-info" / "licenses" / "LICENSE"
    big.write_text("BSD 2-Clause License\n" + " " * licenses.MAX_FILE, encoding="utf-8")
    (row,) = licenses.check_environment(site, pol, None)[0]
    assert row.verdict == "deny" and row.source == "none usable"  # too big to read: not guessed

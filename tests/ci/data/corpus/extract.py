"""Rebuild this corpus from venvs installed from the locks beside it (run by hand, offline
afterwards): ``python extract.py PROJECT VENV``. Keeps, per installed distribution, the
METADATA header block (the long description dropped), every licence file the toolkit
reads, and a RECORD listing just those files — what a licence verdict needs, and no code."""

from __future__ import annotations

import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

from ci.supply_chain import licenses as licences

INDEX_PAGE = re.compile(rb"https?://[^\s/]+/project/[^\s)>\]]*")
KEEP = ("Metadata-Version", "Name", "Version", "License", "License-Expression", "License-File")


def keep_licence_fields(header: str) -> str:
    """The header fields a licence verdict reads (URLs and the rest dropped)."""
    kept: list[str] = []
    keep = False
    for line in header.splitlines():
        if line[:1] in {" ", "\t"}:  # a continuation of the field before
            if keep:
                kept.append(line)
            continue
        field, _, value = line.partition(":")
        keep = field in KEEP or (field == "Classifier" and value.strip().startswith("License"))
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"


def main(project: str, venv: Path) -> None:
    site = next(venv.glob("lib/python3*/site-packages"))
    out = Path(__file__).parent / project / "site"
    shutil.rmtree(out, ignore_errors=True)
    for dist in metadata.distributions(path=[str(site)]):
        info = Path(str(getattr(dist, "_path", ""))).name
        kept = [file.path for file in licences.licence_files(dist)]  # what the toolkit reads
        for rel in kept:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            data = (site / rel).read_bytes()
            # Package-index project pages (no index host is written into this repository).
            target.write_bytes(INDEX_PAGE.sub(b"<project page>", data))
        meta = (site / info / "METADATA").read_text(encoding="utf-8")
        (out / info).mkdir(parents=True, exist_ok=True)
        (out / info / "METADATA").write_text(
            keep_licence_fields(meta.split("\n\n", 1)[0]), encoding="utf-8"
        )
        (out / info / "RECORD").write_text("".join(f"{k},,\n" for k in kept), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))

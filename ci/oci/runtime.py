"""The OCI runtime that runs an unpacked image: runc (Debian package ``runc``), as root.

One finder for the image's smoke run and the release's hardened run; crun does not work
on these machines (cgroups hybrid mode), so it is never picked.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ci.oci.errors import OCIError

RUNC_PATHS = ("/usr/sbin/runc", "/usr/bin/runc")


def find_runc(purpose: str) -> str:
    """runc's path, as root; else one clear error naming ``purpose`` (what needs it)."""
    found = shutil.which("runc") or next((p for p in RUNC_PATHS if Path(p).exists()), None)
    if found is None:
        raise OCIError("runc is not installed (apt-get install runc)")
    if os.geteuid() != 0:
        raise OCIError(f"{purpose} needs root for runc; run it as root")
    return found

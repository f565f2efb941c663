"""Supply-chain checks over any project's hashed locks: sources, licences, advisories, SBOM."""

from pathlib import Path

# Used when a command is given no --policy: permissive licences, copyleft denied, the
# shipped advisory snapshot, no package named (see the file).
DEFAULT_POLICY = Path(__file__).resolve().with_name("default-policy.toml")

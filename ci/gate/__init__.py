"""The gate's own checks: the pinned toolchain, lock parsing, coverage floors, security scan."""

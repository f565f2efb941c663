"""GitHub workflow checks and helpers for the jobs."""

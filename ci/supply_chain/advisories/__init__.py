"""Advisories: the OSV snapshot database, OSV records, the offline and online audits."""

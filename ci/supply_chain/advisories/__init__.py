"""Advisories: the OSV snapshot database, OSV records, the offline and online audits."""

# The command line's choices, here so that building the parser imports no audit code.
DB_ENV = "BOT4_ADVISORY_DB"  # the advisory DB, when neither --db nor the policy names one
ONLINE_MODES = ("auto", "require", "never")  # pip-audit: when its service answers, always, never
SERVICES = ("pypi", "osv")  # pip-audit's vulnerability services

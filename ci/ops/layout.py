"""Where the ops files live, the tools they need, and the ops error type."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ci.errors import GateError

log = logging.getLogger(__name__)

SEVERITIES = ("page", "warning")
RUNBOOK_SECTIONS = ("## Alerts", "## Symptoms", "## Diagnose", "## Mitigate", "## Escalate")
# The ten critical runbooks (docs/runbooks/<slug>.md); the test and `check` demand each.
RUNBOOKS = (
    "breaker-flapping",
    "queue-overflow",
    "slo-burn",
    "global-fuse",
    "gate-override",
    "audit-log-verification",
    "exchange-outage",
    "rate-limit-rejects",
    "drawdown-halt",
    "image-signature-refusal",
)
TOOLS = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "alertmanager": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


class OpsError(GateError):
    """A broken ops file, a missing tool or a failed server; the message says what to do."""


@dataclass(frozen=True)
class Layout:
    """Where the ops files live, relative to the repository root."""

    root: Path

    @property
    def ops(self) -> Path:
        """The ops/ directory."""
        return self.root / "ops"

    @property
    def rule_files(self) -> list[Path]:
        """ops/rules/*.yml, sorted."""
        return sorted((self.ops / "rules").glob("*.yml"))

    @property
    def rule_tests(self) -> list[Path]:
        """ops/tests/*_test.yml (promtool unit tests), sorted."""
        return sorted((self.ops / "tests").glob("*_test.yml"))

    @property
    def prometheus_config(self) -> Path:
        """ops/prometheus.yml."""
        return self.ops / "prometheus.yml"

    @property
    def alertmanager_config(self) -> Path:
        """ops/alertmanager.yml."""
        return self.ops / "alertmanager.yml"

    @property
    def route_cases(self) -> Path:
        """ops/alertmanager-routes.yml: labels → expected receivers."""
        return self.ops / "alertmanager-routes.yml"

    @property
    def dashboards(self) -> Path:
        """ops/dashboards/ (generated JSON)."""
        return self.ops / "dashboards"

    @property
    def runbooks(self) -> Path:
        """docs/runbooks/."""
        return self.root / "docs" / "runbooks"

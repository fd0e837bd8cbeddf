"""deploy/alerts.yml: every rule is complete, watches a metric the broker exports, and is
documented; where promtool is installed, Prometheus's own checker and the rule unit tests in
deploy/alerts.test.yml pass too.

No YAML library is a dependency, so the structure is read line by line (the file keeps to one
plain layout); promtool is the real parser. `.ci/run` installs it (Debian's `prometheus`
package), and under CI a missing promtool fails the test rather than skipping it, so the rule unit
tests always run there; on a developer's machine without it the test skips with a note.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from broker.metrics import Metrics
from broker.web.webhook_refusals import WebhookRefusal
from tests.support.postgres import in_ci

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "alerts.test.yml"
EXPECTED_ALERTS = {
    "BrokerDeadLetter",
    "BrokerDeadLettersUnattended",
    "BrokerDeliveryBacklog",
    "BrokerWebhooksRefused",
    "BrokerParkedSubscriptions",
    "BrokerUnmappedPlan",
    "BrokerSubscriptionConflict",
    "BrokerBillingBudgetLow",
    "BrokerReconciliationDrift",
    "BrokerSubscriptionMissingInBilling",
    "BrokerReconciliationFailing",
    "BrokerStoreUnreachable",
}


def alert_blocks() -> dict[str, str]:
    """Each rule's text, by alert name."""
    text = ALERTS.read_text()
    assert "\ngroups:\n" in text
    parts = re.split(r"^ {6}- alert: (\w+)\n", text, flags=re.MULTILINE)
    blocks = dict(zip(parts[1::2], parts[2::2], strict=True))
    # A group heading ends the rule before it.
    return {name: block.split("\n  - name:")[0] for name, block in blocks.items()}


def exported_series() -> set[str]:
    """The series names the broker's registry exposes, as PromQL sees them."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        names.update(family.name + s for s in suffixes.get(family.type, [""]))
    return names


def test_alerts_yml_defines_every_expected_alert_and_no_other():
    assert set(alert_blocks()) == EXPECTED_ALERTS


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_each_alert_has_an_expression_a_severity_and_words_for_the_operator(name: str):
    block = alert_blocks()[name]
    assert re.search(r"^ {8}expr: \S", block, re.MULTILINE), block
    assert re.search(r"^ {10}severity: (critical|warning)$", block, re.MULTILINE), block
    assert re.search(r"^ {10}summary: \"[^\"]+\"$", block, re.MULTILINE), block
    assert re.search(r"^ {10}description: >-\n {12}\S", block, re.MULTILINE), block
    duration = re.search(r"^ {8}for: (\S+)$", block, re.MULTILINE)
    assert duration is None or re.fullmatch(r"\d+[smhd]", duration.group(1)), block


def test_every_metric_an_alert_watches_is_one_the_broker_exports():
    watched = {
        metric
        for block in alert_blocks().values()
        for expr in re.findall(r"expr: (.+)", block)
        for metric in re.findall(r"\bbroker_\w+", expr)
    }
    assert watched, "no metric found in any expression"
    assert watched <= exported_series(), watched - exported_series()
    assert "broker_webhooks_refused_total" in watched
    assert "broker_parked_subscriptions" in watched
    assert "broker_reconcile_drift_total" in watched


def test_the_series_an_alert_watches_from_outside_the_broker_are_documented():
    """/readyz has no metric of its own: Prometheus's blackbox exporter probes it, and the
    operator must be told how, or the store alert never fires."""
    text = ALERTS.read_text()
    outside = set(re.findall(r"\b(probe_success\{job=\"[\w-]+\"\})", text))
    assert outside == {'probe_success{job="broker-readyz"}'}
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "job_name: broker-readyz" in readme
    assert "module: [http_2xx]" in readme


def test_deploy_readme_explains_every_alert():
    readme = (ROOT / "deploy" / "README.md").read_text()
    for name in EXPECTED_ALERTS:
        assert f"`{name}`" in readme, name


def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    promtool = shutil.which("promtool")
    if promtool is None:
        if in_ci(os.environ):
            pytest.fail("promtool is not installed: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (apt-get install prometheus); CI runs this")
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERT_TESTS)]):
        done = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_refused_webhooks_alert_leaves_out_hang_ups_and_stalled_bodies_only():
    """A client hanging up or stalling is counted but is not the operator's to fix; every other
    refusal reason still alerts."""
    (expr,) = re.findall(r"expr: (.+)", alert_blocks()["BrokerWebhooksRefused"])
    (excluded,) = re.findall(r'reason!~"([^"]+)"', expr)
    assert set(excluded.split("|")) == {WebhookRefusal.DISCONNECTED, WebhookRefusal.BODY_TIMEOUT}

"""Subscription broker: Zoho Billing webhooks in, Zoho Developer Console Subscription calls out."""

# The one version source: the wheel's metadata (pyproject's dynamic version), `broker --version`,
# the operator console and the ``broker_build_info`` metric all read this. Bump it with a
# CHANGELOG entry (docs/CHANGELOG.md) in the same commit.
__version__ = "0.2.0"

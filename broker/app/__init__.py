"""The composition root: settings in, a fully wired broker out.

Only ``cli`` (and tests) import it; it imports ``web``, ``manage``, ``ops`` and ``delivery`` and
nothing imports it back, so the parts it wires never reach each other through it.
"""

from broker.app.factory import create_app

__all__ = ["create_app"]

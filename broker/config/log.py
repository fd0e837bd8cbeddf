"""``[log]``: how much the broker logs, and in which form."""

from __future__ import annotations

from typing import Literal

from broker.config.base import Section


class LogSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"

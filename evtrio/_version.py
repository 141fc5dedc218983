"""The version of evtrio, in one place (read by pyproject.toml as well)."""

from __future__ import annotations

__version__ = "0.1.0.dev0"

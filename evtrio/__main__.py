"""``python -m evtrio``: the same as the ``evtrio`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())

"""One module per scenario, each with ``run(bench)`` (records its figures on the
:class:`bench.context.Bench`), ``TARGETS`` ({figure: (op, value)}) and ``FIGURES``
({figure: what it measures}). ``ORDER`` is the order of ``make bench``."""

from __future__ import annotations

import importlib
from types import ModuleType

ORDER = ("delivery", "soap", "ingest", "latency", "isolation", "replay", "workers",
         "backlog", "hanging", "flaky", "purge", "webhooks10k", "claim_cost", "scale", "portal")


def module(name: str) -> ModuleType:
    if name not in ORDER:
        raise KeyError(name)
    return importlib.import_module(f"bench.scenarios.{name}")


def modules() -> list[ModuleType]:
    return [module(name) for name in ORDER]

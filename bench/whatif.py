"""Proposed changes, applied to this process only to measure them (``--what-if NAME``).

Nothing here changes the product; a run with a what-if prints it in its header.

* ``sniffio``: httpcore (under PTB's httpx) runs ``import sniffio`` on every connection-lock
  setup, several times per request; the package is not installed (anyio 4.x no longer depends
  on it), so every call is a failed import that searches sys.path. Installing sniffio (adding it
  to pyproject's dependencies) makes the import a dictionary hit; a module answering "asyncio",
  as sniffio does under asyncio, stands in for it here.
"""

from __future__ import annotations

import sys
import types

CHANGES = ("sniffio",)


def _sniffio() -> str:
    module = types.ModuleType("sniffio")
    module.current_async_library = lambda: "asyncio"
    sys.modules.setdefault("sniffio", module)
    return "sniffio importable (proposed dependency), stand-in module"


def apply(names: str) -> list[str]:
    applied = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name not in CHANGES:
            raise SystemExit(f"unknown what-if {name!r}; known: {', '.join(CHANGES)}")
        applied.append({"sniffio": _sniffio}[name]())
    return applied

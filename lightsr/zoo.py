"""The shipped models by role, loaded once and cached (what the app and CLI pick from).

Each entry is a folder of ``checkpoints/`` and, with a Hub namespace, the repo
``{namespace}/{folder}``. Local folders are the default, so everything works offline;
set ``LIGHTSR_HUB_NAMESPACE`` (or pass ``namespace=``) to load from the Hub instead, as
the hosted Space can.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import LightSRError
from .hub import LightSRModel, load

__all__ = ["Entry", "KINDS", "CATALOGUE", "CHECKPOINTS", "available", "get_model", "find"]

# The repo's checkpoints/ unless LIGHTSR_CHECKPOINTS points at another folder of the same layout.
CHECKPOINTS = Path(os.environ.get("LIGHTSR_CHECKPOINTS") or Path(__file__).resolve().parent.parent / "checkpoints")


@dataclass(frozen=True)
class Entry:
    name: str  # folder in checkpoints/ and repo name on the Hub
    task: str
    label: str  # what the UI shows
    scale: int = 1
    kind: str = ""  # super-resolution: one of KINDS


KINDS = ("fast", "balanced", "quality")  # super-resolution speed/quality trade-offs, fastest first

CATALOGUE: tuple[Entry, ...] = (
    Entry("rdn-light-x2", "super-resolution", "quality x2 (RDN-light)", 2, "quality"),
    Entry("rdn-light-x4", "super-resolution", "quality x4 (RDN-light)", 4, "quality"),
    Entry("ecbsr-x2", "super-resolution", "fast x2 (ECBSR)", 2, "fast"),
    Entry("ecbsr-x4", "super-resolution", "fast x4 (ECBSR)", 4, "fast"),
    Entry("span-s-x2", "super-resolution", "balanced x2 (SPAN-S)", 2, "balanced"),
    Entry("span-s-x4", "super-resolution", "balanced x4 (SPAN-S)", 4, "balanced"),
    # The first of a task is the app's default: Pix2Pix measures best on both flare sets (BENCHMARKS.md).
    Entry("pix2pix-flare", "flare-removal", "Pix2Pix"),
    Entry("nf-resunet-flare", "flare-removal", "NF-ResUNet"),
)

_cache: dict[tuple[str, str | None], LightSRModel] = {}
_lock = threading.Lock()


def _namespace(namespace: str | None) -> str | None:
    return namespace if namespace is not None else (os.environ.get("LIGHTSR_HUB_NAMESPACE") or None)


def available(task: str | None = None, *, namespace: str | None = None) -> list[Entry]:
    """Catalogue entries that can be loaded: shipped folders, or every entry in Hub mode."""
    ns = _namespace(namespace)
    return [e for e in CATALOGUE if (task is None or e.task == task)
            and (ns is not None or (CHECKPOINTS / e.name / "config.json").is_file())]


def find(task: str, *, label: str | None = None, scale: int | None = None, kind: str | None = None,
         namespace: str | None = None) -> Entry:
    """The available entry matching the given label, or scale and kind."""
    for e in available(task, namespace=namespace):
        if (label is None or e.label == label) and (scale is None or e.scale == scale) and \
                (kind is None or e.kind == kind):
            return e
    wanted = label or " ".join(str(x) for x in (kind, f"x{scale}" if scale else None) if x)
    have = ", ".join(e.label for e in available(task, namespace=namespace)) or "none"
    raise LightSRError(f"no {task} model '{wanted}' is available (available: {have})")


def get_model(entry: Entry, *, namespace: str | None = None) -> LightSRModel:
    """Load ``entry`` once per process (thread-safe) and return the cached model."""
    ns = _namespace(namespace)
    key = (entry.name, ns)
    with _lock:
        if key not in _cache:
            _cache[key] = load(f"{ns}/{entry.name}" if ns else CHECKPOINTS / entry.name)
        return _cache[key]

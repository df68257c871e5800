"""The shipped models by role, loaded once and cached (what the app and CLI pick from).

Each entry is a folder of ``checkpoints/`` and, with a Hub namespace, the repo
``{namespace}/{folder}``. Local folders are the default, so everything works offline;
set ``LIGHTSR_HUB_NAMESPACE`` (or pass ``namespace=``) to load from the Hub instead, as
the hosted Space can. ``resolve`` is the one place a model name becomes a model: a
folder, a Hub repo id, or a shipped name (``checkpoints/NAME`` when present, else the
Hub repo ``lightsr/NAME``, as after ``pip install lightsr``, which has no checkpoints/).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import LightSRError, first_line
from .hub import load
from .models.base import LightSRModel

__all__ = ["Entry", "Ensemble", "KINDS", "CATALOGUE", "ENSEMBLES", "CHECKPOINTS", "DEFAULT_NAMESPACE", "available",
           "available_ensembles", "choices", "default_names", "get_model", "get_models", "find", "resolve", "prepare"]

# The repo's checkpoints/ unless LIGHTSR_CHECKPOINTS points at another folder of the same layout.
CHECKPOINTS = Path(os.environ.get("LIGHTSR_CHECKPOINTS") or Path(__file__).resolve().parent.parent / "checkpoints")
DEFAULT_NAMESPACE = "lightsr"  # where the shipped names live on the Hub


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
    # The first of a task is the app's default unless an ensemble of the task is (ENSEMBLES: the flare default).
    Entry("pix2pix-flare", "flare-removal", "Pix2Pix"),
    Entry("nf-resunet-flare", "flare-removal", "NF-ResUNet"),
)


@dataclass(frozen=True)
class Ensemble:
    """Shipped models run as one: ``lightsr.flare.remove_flare(first, ensemble=rest)`` averages their estimates."""
    label: str  # what the UI shows
    task: str
    names: tuple[str, ...]  # CATALOGUE names; the first is the model, the rest its ensemble
    default: bool = False  # the app's and the command line's default for its task, ahead of every single model


# Averaging the two flare models halves the harm Pix2Pix does to sunlit photos at a smaller cost in glare removed
# (lightsr.flare.ENSEMBLE's comment; BENCHMARKS.md measures it beside each model): the flare default.
ENSEMBLES: tuple[Ensemble, ...] = (
    Ensemble("Pix2Pix + NF-ResUNet", "flare-removal", ("pix2pix-flare", "nf-resunet-flare"), default=True),
)

_cache: dict[tuple[str, str | None], LightSRModel] = {}
_lock = threading.Lock()


def _namespace(namespace: str | None) -> str | None:
    """The Hub namespace to load shipped names from, or None for checkpoints/. Without a
    checkpoints/ folder (a pip-installed lightsr) the shipped names come from the Hub."""
    if namespace is not None:
        return namespace
    return os.environ.get("LIGHTSR_HUB_NAMESPACE") or (None if CHECKPOINTS.is_dir() else DEFAULT_NAMESPACE)


def available(task: str | None = None, *, namespace: str | None = None) -> list[Entry]:
    """Catalogue entries that can be loaded: shipped folders, or every entry in Hub mode."""
    ns = _namespace(namespace)
    return [e for e in CATALOGUE if (task is None or e.task == task)
            and (ns is not None or (CHECKPOINTS / e.name / "config.json").is_file())]


def available_ensembles(task: str | None = None, *, namespace: str | None = None) -> list[Ensemble]:
    """Ensembles whose every member is available."""
    have = {e.name for e in available(namespace=namespace)}
    return [x for x in ENSEMBLES if (task is None or x.task == task) and all(n in have for n in x.names)]


def choices(task: str, *, namespace: str | None = None) -> list[str]:
    """The labels the app offers for ``task``, its default first: an ensemble marked default, then the
    models in CATALOGUE order, then the other ensembles."""
    ensembles = available_ensembles(task, namespace=namespace)
    return ([x.label for x in ensembles if x.default] + [e.label for e in available(task, namespace=namespace)]
            + [x.label for x in ensembles if not x.default])


def default_names(task: str) -> list[str]:
    """The CATALOGUE names behind ``task``'s default: a default ensemble's members, else its first model."""
    for x in ENSEMBLES:
        if x.task == task and x.default:
            return list(x.names)
    return [next(e.name for e in CATALOGUE if e.task == task)]


def get_models(ensemble: Ensemble, *, namespace: str | None = None) -> list[LightSRModel]:
    """The cached models of ``ensemble``, in its order (``get_model`` of each)."""
    by_name = {e.name: e for e in CATALOGUE}
    return [get_model(by_name[n], namespace=namespace) for n in ensemble.names]


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
    """``resolve(entry.name)`` once per process (thread-safe): the cached model the app and the
    benchmarks share."""
    key = (entry.name, _namespace(namespace))
    with _lock:
        if key not in _cache:
            _cache[key] = resolve(entry.name, namespace=namespace)
        return _cache[key]


def prepare(*, namespace: str | None = None) -> list[str]:
    """Load every available model and settle its backend (``backends.runner(model, None)``:
    converted, compiled, int8-quantized where auto weighs it, timed and chosen, all cached on
    disk), so that no request pays it: what a server runs once at start-up, on a thread.
    Returns the names prepared; a model that fails is skipped with one warning line."""
    from .backends import runner

    done = []
    for entry in available(namespace=namespace):
        try:
            runner(get_model(entry, namespace=namespace), None)
        except Exception as err:  # noqa: BLE001 - a request will meet it again, with its own message
            logging.getLogger(__name__).warning("could not prepare %s: %s", entry.name, first_line(err))
        else:
            done.append(entry.name)
    return done


def resolve(name: str | os.PathLike, *, task: str | None = None, revision: str | None = None,
            namespace: str | None = None) -> LightSRModel:
    """Load ``name``: a model folder, a Hub repo id (``namespace/name``), or a shipped name.

    The one resolver (the CLI, the app through ``get_model``, the benchmarks). A shipped name
    (one of ``CATALOGUE``) loads from the Hub repo ``{namespace}/NAME`` when a namespace is
    asked for (``namespace``, or ``LIGHTSR_HUB_NAMESPACE``), else from ``checkpoints/NAME``
    when that folder is there (``LIGHTSR_CHECKPOINTS`` moves it), else from ``lightsr/NAME``
    on the Hub, into the Hugging Face cache. Anything else raises one line naming what was
    tried. ``task`` checks the model's task.
    """
    text = str(name)
    shipped = [e.name for e in CATALOGUE]
    asked = namespace or os.environ.get("LIGHTSR_HUB_NAMESPACE")
    if Path(text).expanduser().exists() or "/" in text or text.startswith((".", "~")):
        model = load(name, revision=revision)
    elif (CHECKPOINTS / text / "config.json").is_file() and not (asked and text in shipped):
        model = load(CHECKPOINTS / text, revision=revision)
    elif text in shipped:
        repo = f"{asked or DEFAULT_NAMESPACE}/{text}"
        try:
            model = load(repo, revision=revision)
        except LightSRError as err:
            raise LightSRError(f"'{text}' is not in {CHECKPOINTS} and the Hub repo '{repo}' could not be "
                               f"loaded: {err}") from None
    else:
        local = sorted(p.parent.name for p in CHECKPOINTS.glob("*/config.json")) if CHECKPOINTS.is_dir() else []
        raise LightSRError(f"'{text}' is not a model folder, a shipped checkpoint "
                           f"({', '.join(sorted(set(local) | set(shipped)))}) or a Hub repo id (namespace/name)")
    if task is not None and model.task != task:
        raise LightSRError(f"'{text}' is a {model.task} model, not {task}")
    return model

"""The one ordered table of named models: ``create_model("rdn-tiny", scale=4)``.

Each architecture file keeps its own ``VARIANTS`` table; this module only lists them, in
order, with no import-time registration magic (spandrel's ``main_registry.py`` style).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from .errors import LightSRError
from .models import ecbsr, nf_resunet, pix2pix, rdn, span
from .models.base import LightSRModel, count_inference_parameters, describe  # describe: re-exported

__all__ = ["ARCHITECTURES", "MODELS", "create_model", "list_models", "architecture_class", "describe",
           "count_inference_parameters"]

# One line per architecture: its class and the module whose VARIANTS table names its presets.
ARCHITECTURES: dict[str, tuple[type[LightSRModel], dict[str, Any]]] = {
    "rdn": (rdn.RDN, rdn.VARIANTS),
    "ecbsr": (ecbsr.ECBSR, ecbsr.VARIANTS),
    "span": (span.SPAN, span.VARIANTS),
    "pix2pix": (pix2pix.Pix2Pix, pix2pix.VARIANTS),
    "nf-resunet": (nf_resunet.NFResUNet, nf_resunet.VARIANTS),
}

# Every named model, in table order (derived: never edited by hand).
MODELS: dict[str, tuple[type[LightSRModel], Any]] = {
    name: (cls, cfg) for cls, variants in ARCHITECTURES.values() for name, cfg in variants.items()}


def list_models() -> list[str]:
    return list(MODELS)


def architecture_class(name: str) -> type[LightSRModel]:
    if name not in ARCHITECTURES:
        raise LightSRError(f"unknown architecture '{name}'; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name][0]


def create_model(name: str, **overrides: Any) -> LightSRModel:
    """Build a named variant with random weights; keyword arguments override config fields."""
    if name not in MODELS:
        raise LightSRError(f"unknown model '{name}'; valid names: {', '.join(MODELS)}")
    cls, config = MODELS[name]
    valid = {f.name for f in fields(config)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise LightSRError(f"'{name}' has no config field {', '.join(unknown)}; fields: {', '.join(sorted(valid))}")
    try:
        config = replace(config, **overrides)
    except (TypeError, ValueError) as err:
        raise LightSRError(f"invalid settings for '{name}': {err}") from None
    return cls(config)

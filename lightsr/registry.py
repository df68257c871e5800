"""The one ordered table of named models: ``create_model("rdn-tiny", scale=4)``.

Each architecture file keeps its own ``VARIANTS`` table; this module only lists them, in
order, with no import-time registration magic (spandrel's ``main_registry.py`` style).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import torch

from .errors import LightSRError
from .hub import LightSRModel
from .models import ecbsr, nf_resunet, pix2pix, rdn, span

__all__ = ["ARCHITECTURES", "MODELS", "create_model", "list_models", "architecture_class", "describe",
           "count_inference_parameters"]

ARCHITECTURES: dict[str, type[LightSRModel]] = {
    "rdn": rdn.RDN,
    "ecbsr": ecbsr.ECBSR,
    "span": span.SPAN,
    "pix2pix": pix2pix.Pix2Pix,
    "nf-resunet": nf_resunet.NFResUNet,
}

MODELS: dict[str, tuple[type[LightSRModel], Any]] = {
    **{name: (rdn.RDN, cfg) for name, cfg in rdn.VARIANTS.items()},
    **{name: (ecbsr.ECBSR, cfg) for name, cfg in ecbsr.VARIANTS.items()},
    **{name: (span.SPAN, cfg) for name, cfg in span.VARIANTS.items()},
    **{name: (pix2pix.Pix2Pix, cfg) for name, cfg in pix2pix.VARIANTS.items()},
    **{name: (nf_resunet.NFResUNet, cfg) for name, cfg in nf_resunet.VARIANTS.items()},
}


def list_models() -> list[str]:
    return list(MODELS)


def architecture_class(name: str) -> type[LightSRModel]:
    if name not in ARCHITECTURES:
        raise LightSRError(f"unknown architecture '{name}'; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


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


def count_flops_per_megapixel(model: LightSRModel, size: int = 256) -> float:
    """FLOPs (2 per multiply-add) per input megapixel, counted on a meta-device copy (no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        ghost = type(model)(model.config).eval()
        x = torch.zeros(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        ghost(x)
    return counter.get_total_flops() * 1e6 / (size * size)


def count_inference_parameters(model: LightSRModel) -> int:
    """Parameters of the network that runs at inference: a re-parameterisable block (one with
    ``fuse() -> (weight, bias)``, e.g. ECBSR's and SPAN's) counts as its fused conv."""
    fused = [m for m in model.modules() if callable(getattr(m, "fuse", None))]
    inside = {id(p) for m in fused for p in m.parameters()}
    with torch.no_grad():
        return sum(p.numel() for p in model.parameters() if id(p) not in inside) + \
            sum(t.numel() for m in fused for t in m.fuse())


def describe(model: LightSRModel) -> dict[str, Any]:
    """Architecture, task, scale, parameter counts (as stored, and as run at inference after
    re-parameterisation), GFLOPs per input megapixel and config."""
    from dataclasses import asdict

    return {
        "architecture": model.architecture,
        "task": model.task,
        "scale": model.scale,
        "parameters": sum(p.numel() for p in model.parameters()),
        "inference_parameters": count_inference_parameters(model),
        "gflops_per_megapixel": count_flops_per_megapixel(model) / 1e9,
        "config": asdict(model.config),
    }

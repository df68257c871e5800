"""The base class of every lightsr network: its contract, saving, loading, card and size.

``LightSRModel`` is an ``nn.Module`` with huggingface_hub's ``PyTorchModelHubMixin``
(``save_pretrained`` / ``push_to_hub`` / ``from_pretrained``). What a model must provide
is declared here, not duck-typed: ``architecture``, ``task`` and ``config_class``; the
tensor contract of ``forward``; ``tile_overlap`` and ``activation_bytes_per_pixel`` for
tiled inference; ``final_layer`` (the layer Adaptive Gradient Clipping skips and a
flare model starts at zero). ``describe`` counts parameters (as stored and as run after
re-parameterisation) and FLOPs; ``render_model_card`` fills model_cards/template.md.

Imports run one way: this module <- the architectures <- ``lightsr.registry`` <-
``lightsr.hub`` (loading by name, pushing) <- the CLI, the app and the trainers.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch
from huggingface_hub import ModelCard, ModelCardData, PyTorchModelHubMixin
from safetensors.torch import save_file
from torch import nn

from ..errors import LightSRError
from ._common import FusedConv3x3
from ..weights import CONFIG_NAME, WEIGHTS_NAME, _config_from_dict, _hub_kwargs, load_weights, read_config, \
    weights_file

__all__ = ["LightSRModel", "describe", "count_flops_per_megapixel", "count_inference_parameters",
           "render_model_card", "REPO_URL"]

REPO_URL = "https://github.com/lightsr/lightsr"


def _template_dir() -> Path:
    """model_cards/ inside the package (installed wheel) or beside it (repo checkout)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "model_cards", package.parent / "model_cards"):
        if (candidate / "template.md").is_file():
            return candidate
    raise LightSRError("model card template not found: expected model_cards/template.md next to lightsr/")


def _architectures() -> dict[str, type[LightSRModel]]:
    """Every defined subclass by its ``architecture`` (the architectures import this module, so
    the base class finds them without importing the registry above it)."""
    found, todo = {}, list(LightSRModel.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if "architecture" in vars(cls):
            found[cls.architecture] = cls
    return found


class LightSRModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="lightsr",
    pipeline_tag="image-to-image",
    license="apache-2.0",
    tags=["lightsr", "image-restoration"],
    repo_url=REPO_URL,
):
    """Base class of every lightsr network.

    Subclasses set ``architecture``, ``task`` and ``config_class``, take their config
    dataclass as the only constructor argument, and implement ``forward`` with the
    tensor contract ``(N, 3, H, W)`` float in [0, 1] -> ``(N, 3, s*H, s*W)`` in [0, 1].
    """

    architecture: ClassVar[str]
    task: ClassVar[str]
    config_class: ClassVar[type]

    @property
    def scale(self) -> int:
        return int(getattr(self.config, "scale", 1))

    def tile_overlap(self) -> int:
        """Context in input pixels a tile needs on each side so tiling is seamless."""
        raise NotImplementedError

    def activation_bytes_per_pixel(self) -> int:
        """Rough peak activation memory per input pixel at inference, used to pick a tile size."""
        raise NotImplementedError

    def size_multiple(self) -> int:
        """Inputs are padded inside forward to a multiple of this (1: any size as it is)."""
        return 1

    def final_layer(self) -> nn.Module:
        """The layer that makes the output: AGC skips it, and a flare model starts it at zero."""
        raise NotImplementedError

    def agc_parameters(self) -> list[nn.Parameter]:
        """Parameters Adaptive Gradient Clipping applies to: all but the final layer's."""
        last = {id(p) for p in self.final_layer().parameters()}
        return [p for p in self.parameters() if id(p) not in last]

    def hub_config(self) -> dict[str, Any]:
        """What goes into config.json: the dataclass plus the keys lightsr.load dispatches on."""
        return {"architecture": self.architecture, "task": self.task, "scale": self.scale, **asdict(self.config)}

    # -- saving -------------------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        # Written here rather than by the mixin so config.json always carries the dispatch keys.
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(save_directory / WEIGHTS_NAME), metadata={"format": "pt"})
        (save_directory / CONFIG_NAME).write_text(json.dumps(self.hub_config(), indent=2, sort_keys=True) + "\n")

    def generate_model_card(self, *args, **kwargs) -> ModelCard:
        return render_model_card(self, **kwargs)

    # -- loading ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision=None, map_location: str = "cpu",
                        strict: bool = True, **hub_kwargs):
        """Load a saved model of this class from a folder or Hub repo id (safetensors only, strict).

        On the base class, ``LightSRModel.from_pretrained(...)`` loads whichever architecture
        the folder's config.json names (as ``lightsr.load`` does). A Hub load fetches
        config.json once and model.safetensors once (the mixin's own path fetched the config
        up to four times, and the Hub counts each as a download).
        """
        if not strict:
            raise LightSRError("lightsr loads weights strictly; strict=False is not supported")
        name = str(pretrained_model_name_or_path)
        config = read_config(pretrained_model_name_or_path, revision=revision, **_hub_kwargs(hub_kwargs))
        if cls is LightSRModel:
            known = _architectures()
            if config.get("architecture") not in known:
                raise LightSRError(f"unknown architecture '{config.get('architecture')}'; known: {', '.join(known)}")
            target = known[config["architecture"]]
        elif config.get("architecture") != cls.architecture:
            raise LightSRError(
                f"{pretrained_model_name_or_path} holds a '{config.get('architecture')}' model, "
                f"not '{cls.architecture}'; use lightsr.load() to get the right class"
            )
        else:
            target = cls
        return target._from_config(name, config, revision=revision, map_location=map_location,
                                   **_hub_kwargs(hub_kwargs))

    @classmethod
    def _from_config(cls, model_id: str, config: dict[str, Any], *, revision: str | None, map_location="cpu",
                     **hub_kwargs):
        """Build from an already-read config.json, then load ``model.safetensors`` strictly."""
        model = cls(_config_from_dict(cls.config_class, config))
        path = weights_file(model_id, revision=revision, **hub_kwargs)
        load_weights(model, path, source=model_id)
        model.to(map_location)
        return model.eval()


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
    """Parameters of the network that runs at inference: a re-parameterisable block (a
    ``FusedConv3x3``, e.g. ECBSR's and SPAN's) counts as its fused conv."""
    fused = [m for m in model.modules() if isinstance(m, FusedConv3x3)]
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


def render_model_card(model: LightSRModel, **context: Any) -> ModelCard:
    """Render model_cards/template.md for ``model``.

    ``context`` adds what the caller measured or knows, all optional: ``results`` (a list
    of dicts with dataset, metric name/value rows), ``training`` (dict), ``speed`` (text),
    ``examples`` (list of image paths in the repo), ``notes``. ``eval_results`` (a list of
    ``huggingface_hub.EvalResult``) becomes the ``model-index`` metadata.
    """
    eval_results = context.pop("eval_results", None)
    repo_id = context.get("repo_id")
    base_model = context.pop("base_model", None)
    info = type(model)._hub_mixin_info  # what the architecture declared: its tags and paper
    paper_url = info.paper_url
    tags = {"lightsr", "image-restoration", "pytorch_model_hub_mixin", "model_hub_mixin", model.task,
            *(info.model_card_data.tags or [])}
    if paper_url and "arxiv.org/abs/" in paper_url:
        tags.add("arxiv:" + paper_url.rsplit("/abs/", 1)[1])  # the Hub links the paper page from this tag
    card_data = ModelCardData(
        library_name="lightsr",
        license="apache-2.0",
        pipeline_tag="image-to-image",
        tags=sorted(tags),
        model_name=repo_id or context.get("model_name"),  # model-index names are the repo ids
        eval_results=eval_results,
        datasets=context.get("datasets"),
        base_model=base_model if base_model and base_model != repo_id else None,  # not a fine-tune of itself
    )
    template = (_template_dir() / "template.md").read_text(encoding="utf-8")
    return ModelCard.from_template(
        card_data,
        template_str=template,
        model=describe(model),
        repo_url=REPO_URL,
        paper_url=paper_url,
        **context,
    )

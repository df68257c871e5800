"""Hugging Face Hub packaging: the model base class, safe loading and model cards.

A saved lightsr model is exactly a Hub repo folder::

    config.json         the config dataclass, plus top-level "architecture", "task", "scale"
    model.safetensors   the weights (the only weight format we ever read)
    README.md           the model card, rendered from model_cards/template.md

Saving, pushing and downloading are huggingface_hub's ``PyTorchModelHubMixin``; this
module only tightens what it does on load: weights are read from safetensors with every
tensor name and shape checked (the mixin's default ``strict=False`` would silently keep
random weights for a renamed layer) and pickle checkpoints are refused, never opened.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from huggingface_hub import ModelCard, ModelCardData, PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import LightSRError

__all__ = ["LightSRModel", "load", "read_config", "render_model_card", "push_folder", "REPO_URL"]

logger = logging.getLogger(__name__)

REPO_URL = "https://github.com/lightsr/lightsr"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Names under which people commonly ship pickled PyTorch weights. We never open them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
TASKS = ("super-resolution", "flare-removal")


def _template_dir() -> Path:
    """model_cards/ beside the package (repo checkout) or inside it (installed wheel)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "model_cards", here.parent / "model_cards"):
        if (candidate / "template.md").is_file():
            return candidate
    raise LightSRError("model card template not found: expected model_cards/template.md next to lightsr/")


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

    def agc_parameters(self) -> list[nn.Parameter]:
        """Parameters Adaptive Gradient Clipping applies to; all but the final layer by default."""
        params = list(self.parameters())
        last = list(self.final_layer().parameters()) if hasattr(self, "final_layer") else []
        last_ids = {id(p) for p in last}
        return [p for p in params if id(p) not in last_ids]

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
            from .registry import architecture_class

            target = architecture_class(config.get("architecture"))
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
        path = _weights_file(model_id, revision=revision, **hub_kwargs)
        load_weights(model, path, source=model_id)
        model.to(map_location)
        return model.eval()


def _config_from_dict(config_class: type, data: dict[str, Any]):
    """The config dataclass from config.json; the dispatch keys and unknown keys are dropped."""
    names = {f.name for f in fields(config_class)}
    try:
        return config_class(**{k: v for k, v in data.items() if k in names})
    except (TypeError, ValueError) as err:
        raise LightSRError(f"invalid {config_class.__name__} in config.json: {err}") from None


def _hub_kwargs(kwargs: dict) -> dict:
    keys = ("cache_dir", "force_download", "local_files_only", "token")
    return {k: kwargs[k] for k in keys if k in kwargs}


def _is_local(name_or_path: str | os.PathLike) -> bool:
    # A Hub repo id is "name" or "namespace/name"; anything else that looks like a path is one.
    s = str(name_or_path)
    return isinstance(name_or_path, Path) or os.path.exists(s) or s.startswith((".", "/", "~")) or s.count("/") > 1


def _hub_download(repo_id: str, filename: str, **kwargs) -> str:
    """``hf_hub_download`` with the Hub's errors turned into one clear line each."""
    try:
        return hf_hub_download(repo_id=repo_id, filename=filename, **kwargs)
    except RepositoryNotFoundError:
        raise LightSRError(f"'{repo_id}' is neither a local folder nor a Hub model repo (repo not found)") from None
    except RevisionNotFoundError:
        raise LightSRError(f"Hub repo '{repo_id}' has no revision '{kwargs.get('revision')}'") from None
    except LocalEntryNotFoundError:
        raise LightSRError(
            f"'{filename}' of Hub repo '{repo_id}' is not in the local cache and the Hub cannot be "
            "reached (offline mode or no network)"
        ) from None
    except HFValidationError:
        raise LightSRError(f"'{repo_id}' is neither a local folder nor a valid Hub repo id") from None
    except RemoteEntryNotFoundError:
        raise  # the callers know what a missing file means for them
    except HfHubHTTPError as err:
        raise LightSRError(f"Hub request for '{repo_id}/{filename}' failed: {str(err).splitlines()[0]}") from None


def read_config(name_or_path: str | os.PathLike, *, revision: str | None = None, **hub_kwargs) -> dict[str, Any]:
    """Read and validate ``config.json`` of a local model folder or a Hub repo id."""
    if _is_local(name_or_path):
        folder = Path(name_or_path).expanduser()
        if not folder.exists():
            raise LightSRError(f"model folder '{folder}' does not exist")
        if folder.is_file():
            hint = " (pickle checkpoints are never loaded)" if folder.suffix.lower() in PICKLE_SUFFIXES else ""
            raise LightSRError(
                f"'{folder}' is a file; pass the model folder holding config.json and model.safetensors{hint}"
            )
        config_path = folder / CONFIG_NAME
        if not config_path.is_file():
            raise LightSRError(f"'{folder}' is not a lightsr model folder: it has no {CONFIG_NAME}")
    else:
        try:
            config_path = Path(_hub_download(str(name_or_path), CONFIG_NAME, revision=revision, **hub_kwargs))
        except RemoteEntryNotFoundError:
            raise LightSRError(f"Hub repo '{name_or_path}' is not a lightsr model: it has no {CONFIG_NAME}") from None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LightSRError(f"{CONFIG_NAME} of '{name_or_path}' is not valid JSON: {err}") from None
    if not isinstance(config, dict) or "architecture" not in config:
        raise LightSRError(f"{CONFIG_NAME} of '{name_or_path}' has no 'architecture' key: not a lightsr model")
    return config


def _weights_file(model_id: str, *, revision: str | None, **hub_kwargs) -> str:
    if os.path.isdir(model_id):
        path = Path(model_id) / WEIGHTS_NAME
        if path.is_file():
            return str(path)
        pickles = sorted(p.name for p in Path(model_id).iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise LightSRError(
                f"'{model_id}' has only pickle weights ({', '.join(pickles)}); lightsr loads safetensors "
                "only and never unpickles. Convert them to model.safetensors with code you trust."
            )
        raise LightSRError(f"'{model_id}' has no {WEIGHTS_NAME}")
    try:
        return _hub_download(model_id, WEIGHTS_NAME, revision=revision, **hub_kwargs)
    except RemoteEntryNotFoundError:
        raise LightSRError(
            f"Hub repo '{model_id}' has no {WEIGHTS_NAME}; lightsr loads safetensors only (pickle is refused)"
        ) from None


def load_weights(model: nn.Module, path: str | os.PathLike, *, source: str | None = None) -> None:
    """Load a safetensors file into ``model``, naming any missing, extra or mis-shaped tensor."""
    source = source or str(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise LightSRError(f"cannot read weights of '{source}': {err}") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors: {_few(missing)}")
    if extra:
        problems.append(f"unexpected tensors: {_few(extra)}")
    if shapes:
        problems.append(f"mis-shaped tensors: {_few(shapes)}")
    if problems:
        raise LightSRError(f"weights of '{source}' do not match its config ({'; '.join(problems)})")
    model.load_state_dict(state, strict=True)


def _few(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def load(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    device: str | torch.device = "auto",
    **hub_kwargs,
) -> LightSRModel:
    """Load any lightsr model from a local folder or a Hub repo id, in eval mode, float32.

    ``config.json`` names the architecture; the matching class is built from it and the
    weights are loaded strictly from ``model.safetensors``. ``revision`` pins a Hub branch,
    tag or commit. ``device="auto"`` puts the model on CUDA when available, else the CPU.
    Raises ``LightSRError`` with a one-line reason for anything wrong.
    """
    from .registry import architecture_class

    config = read_config(name_or_path, revision=revision, **hub_kwargs)
    cls = architecture_class(config["architecture"])
    model = cls._from_config(str(name_or_path), config, revision=revision, **hub_kwargs)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device)


def render_model_card(model: LightSRModel, **context: Any) -> ModelCard:
    """Render model_cards/template.md for ``model``.

    ``context`` adds what the caller measured or knows, all optional: ``results`` (a list
    of dicts with dataset, metric name/value rows), ``training`` (dict), ``speed`` (text),
    ``examples`` (list of image paths in the repo), ``notes``. ``eval_results`` (a list of
    ``huggingface_hub.EvalResult``) becomes the ``model-index`` metadata.
    """
    from .registry import describe

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


def push_folder(folder: str | os.PathLike, repo_id: str, *, message: str | None = None,
                private: bool | None = None) -> str:
    """Upload a saved model folder (config, weights, card, card images) to the Hub as one commit.

    The folder is loaded first, so only a complete, consistent model is ever pushed.
    Returns the commit id.
    """
    from huggingface_hub import HfApi

    load(folder, device="cpu")
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True, private=private)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder),
                             allow_patterns=["config.json", "model.safetensors", "README.md", "*.png"],
                             commit_message=message or f"Upload {Path(folder).name} with lightsr")
    return info.oid

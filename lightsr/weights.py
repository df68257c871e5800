"""Safe reading of a saved model: config.json and model.safetensors, from a folder or the Hub.

A saved lightsr model is exactly a Hub repo folder::

    config.json         the config dataclass, plus top-level "architecture", "task", "scale"
    model.safetensors   the weights (the only weight format we ever read)
    README.md           the model card, rendered from model_cards/template.md

Weights are read from safetensors with every tensor name and shape checked (the mixin's
default ``strict=False`` would silently keep random weights for a renamed layer) and
pickle checkpoints are refused, never opened. Hub errors become one line each.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .errors import LightSRError, first_line

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "PICKLE_SUFFIXES", "read_config", "load_weights", "weights_file"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Names under which people commonly ship pickled PyTorch weights. We never open them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


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
        raise LightSRError(f"Hub request for '{repo_id}/{filename}' failed: {first_line(err)}") from None


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


def weights_file(model_id: str, *, revision: str | None, **hub_kwargs) -> str:
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

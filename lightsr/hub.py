"""Loading any lightsr model by folder or Hub repo id, and pushing a model folder to the Hub.

The layer above the registry: ``load`` reads config.json once, picks the architecture from
``lightsr.registry`` and loads the weights strictly from safetensors. The base class, the
card renderer and the safe readers live below it (``lightsr.models.base``,
``lightsr.weights``) and are re-exported here for convenience.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .models.base import REPO_URL, LightSRModel, render_model_card
from .registry import architecture_class
from .weights import read_config

__all__ = ["LightSRModel", "load", "read_config", "render_model_card", "push_folder", "REPO_URL"]

def load(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    **hub_kwargs,
) -> LightSRModel:
    """Load any lightsr model from a local folder or a Hub repo id, in eval mode, float32.

    ``config.json`` names the architecture; the matching class is built from it and the
    weights are loaded strictly from ``model.safetensors``. ``revision`` pins a Hub branch,
    tag or commit. The model is on ``device`` (the CPU by default; move it to CUDA yourself, or
    pass ``device="auto"`` for CUDA when available).
    Raises ``LightSRError`` with a one-line reason for anything wrong.
    """
    config = read_config(name_or_path, revision=revision, **hub_kwargs)
    cls = architecture_class(config["architecture"])
    model = cls._from_config(str(name_or_path), config, revision=revision, **hub_kwargs)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device)


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

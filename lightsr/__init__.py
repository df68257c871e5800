"""lightsr: light image-restoration models (super-resolution, lens-flare removal).

    import lightsr
    model = lightsr.load("checkpoints/rdn-light-x2")        # or a Hub repo id
    out = lightsr.enhance(model, Image.open("photo.jpg"))   # tiled, any size
"""

from .errors import LightSRError
from .flare import remove_flare
from .hub import load
from .imaging import bicubic_downscale, bicubic_upscale, open_image, save_image
from .inference import enhance
from .metrics import psnr, ssim
from .models.base import LightSRModel
from .registry import create_model, describe, list_models


def __getattr__(name: str):
    """``lightsr.upscale_video``, imported on first use: it needs PyAV (the "video" extra)."""
    if name == "upscale_video":
        from .video import upscale_video

        return upscale_video
    raise AttributeError(f"module 'lightsr' has no attribute {name!r}")


__all__ = [
    "LightSRError",
    "LightSRModel",
    "load",
    "create_model",
    "list_models",
    "describe",
    "enhance",
    "remove_flare",
    "upscale_video",
    "open_image",
    "save_image",
    "bicubic_downscale",
    "bicubic_upscale",
    "psnr",
    "ssim",
]
__version__ = "0.1.0"

"""lightsr: light image-restoration models (super-resolution, lens-flare removal).

    import lightsr
    model = lightsr.load("checkpoints/rdn-light-x2")        # or a Hub repo id
    out = lightsr.enhance(model, Image.open("photo.jpg"))   # tiled, any size
"""

from .errors import LightSRError
from .hub import load
from .imaging import bicubic_downscale, bicubic_upscale, open_image
from .inference import enhance
from .metrics import psnr, ssim
from .registry import create_model, describe, list_models

__all__ = [
    "LightSRError",
    "load",
    "create_model",
    "list_models",
    "describe",
    "enhance",
    "open_image",
    "bicubic_downscale",
    "bicubic_upscale",
    "psnr",
    "ssim",
]
__version__ = "0.1.0"

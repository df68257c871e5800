"""Reading images safely, and the bicubic degradation of the benchmark protocol.

``open_image`` is the single door through which user files come in: it refuses empty,
non-image, truncated and oversized files with one clear line each (the size check runs
on the header, before any pixel is decoded, so a decompression bomb costs nothing) and
applies EXIF orientation.

``bicubic_downscale`` / ``bicubic_upscale`` use Pillow's BICUBIC filter on 8-bit images,
which reproduces MATLAB ``imresize`` closely enough that Set5 x2 bicubic measures
33.67 dB against the published 33.66 (see data/README.md).
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import LightSRError

__all__ = [
    "open_image",
    "modcrop",
    "bicubic_downscale",
    "bicubic_upscale",
    "save_image",
    "to_rgb8",
    "alpha_of",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "image_files",
    "to_unit_range",
    "cache_dir",
]

# 100 megapixels: a 12 MP phone photo upscaled x2 is far below it; a decompression bomb is not.
DEFAULT_MAX_PIXELS = 100_000_000


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def image_files(folder: str | Path) -> list[Path]:
    """The image files of ``folder`` (by suffix), sorted; one clear error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LightSRError(f"'{folder}' is not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise LightSRError(f"'{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def open_image(source, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open, size-check, fully decode and EXIF-orient an image file (path, bytes or file object)."""
    name = str(source) if isinstance(source, (str, os.PathLike)) else "image"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise LightSRError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise LightSRError(f"{name}: the file is empty (0 bytes)")
    elif isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise LightSRError("image: the data is empty (0 bytes)")
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors) above its own bomb limit; we apply ours right below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source)
    except UnidentifiedImageError:
        raise LightSRError(f"{name}: not an image file Pillow can read") from None
    except Image.DecompressionBombError as err:  # Pillow's own limit, checked on the header too
        raise LightSRError(f"{name}: refused before decoding, far too large ({err})") from None
    except OSError as err:
        raise LightSRError(f"{name}: cannot open image ({err})") from None
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        img.close()
        raise LightSRError(
            f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the limit of {max_pixels / 1e6:.0f}; "
            "refused before decoding"
        )
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise LightSRError(f"{name}: the image data is corrupt or truncated ({err})") from None
    return ImageOps.exif_transpose(img)


def modcrop(img: Image.Image, scale: int) -> Image.Image:
    """Crop the bottom/right so both sides are multiples of ``scale`` (the protocol's first step)."""
    w, h = img.size
    return img.crop((0, 0, w - w % scale, h - h % scale))


def _resize(img, size_fn) -> Image.Image | np.ndarray:
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            raise ValueError(f"bicubic resizing of arrays takes uint8, got {img.dtype}")
        pil = Image.fromarray(img)
        return np.asarray(pil.resize(size_fn(pil.size), Image.BICUBIC))
    return img.resize(size_fn(img.size), Image.BICUBIC)


def bicubic_downscale(img: Image.Image | np.ndarray, scale: int) -> Image.Image | np.ndarray:
    """Protocol LR image: crop to a multiple of ``scale``, then Pillow BICUBIC down by ``scale``.

    Takes a PIL image or a uint8 (H, W[, C]) array and returns the same kind.
    """
    if isinstance(img, np.ndarray):
        img = img[: img.shape[0] - img.shape[0] % scale, : img.shape[1] - img.shape[1] % scale]
    else:
        img = modcrop(img, scale)
    return _resize(img, lambda size: (size[0] // scale, size[1] // scale))


def bicubic_upscale(img: Image.Image | np.ndarray, scale: int) -> Image.Image | np.ndarray:
    """Pillow BICUBIC up by ``scale``: the baseline every SR model is compared with."""
    return _resize(img, lambda size: (size[0] * scale, size[1] * scale))


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early (before any work) on an output path Pillow cannot write or a missing folder."""
    path = Path(path)
    Image.init()
    if path.suffix.lower() not in Image.registered_extensions():
        raise LightSRError(f"{path}: unknown image extension '{path.suffix}' (use .png, .jpg, .webp or .tif)")
    if not path.parent.resolve().is_dir():
        raise LightSRError(f"{path}: folder '{path.parent}' does not exist")
    return path


def to_rgb8(img: Image.Image) -> Image.Image:
    """``img``, any mode, as 8-bit RGB (oriented as it is: ``open_image`` applies EXIF orientation). Integer grey
    of 16 or 32 bits (I;16, I) is read on 0..65535 and float grey (F) on 0..1, as ``enhance`` and ``save_image``
    write them; Pillow's own ``convert("RGB")`` clips both at 255, so a 16-bit photo would turn white."""
    grey = _grey8(img)
    return (img if grey is None else grey).convert("RGB")


def alpha_of(img: Image.Image) -> Image.Image | None:
    """The (H, W) 8-bit alpha channel (mode L) of ``img`` where it has one (an A band, or a palette or
    colour marked transparent), else None: what a restoration that works on the colour gives back as it was."""
    if "A" in img.getbands() or "transparency" in img.info:
        return img.convert("RGBA").getchannel("A")
    return None


def _grey8(img: Image.Image) -> Image.Image | None:
    """Integer grey of 16 or 32 bits (I;16*, I; 0..65535) or float grey (F; 0..1) as 8-bit grey (L); None for
    any other mode."""
    if img.mode.startswith("I;16") or img.mode == "I":
        level = np.asarray(img, dtype=np.float64) / 257.0
    elif img.mode == "F":
        level = np.nan_to_num(np.asarray(img, dtype=np.float64)) * 255.0
    else:
        return None
    return Image.fromarray(np.rint(np.clip(level, 0, 255)).astype(np.uint8), mode="L")


def unit_to_u16(level: np.ndarray) -> np.ndarray:
    """Float levels on 0..1 (NaN as 0, clipped) as uint16 on 0..65535: how a float (F) image is held in 16 bits."""
    return np.rint(np.clip(np.nan_to_num(level), 0, 1) * 65535).astype(np.uint16)


def save_image(img: Image.Image, path: str | os.PathLike) -> None:
    """Save atomically: write a temporary file beside ``path`` then rename it into place.

    16-bit images go to PNG/TIFF as they are; formats without 16-bit (JPEG, WebP) get 8 bits.
    """
    path = check_output_path(path)
    fmt = Image.registered_extensions()[path.suffix.lower()]
    if img.mode == "F" and fmt == "PNG":  # PNG has no float: 16-bit, 0..1 on 0..65535 as enhance reads it
        img = Image.fromarray(unit_to_u16(np.asarray(img)))
    elif img.mode in ("I;16", "I", "F") and fmt not in ("PNG", "TIFF"):
        img = _grey8(img)
    if fmt == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
        img = img.convert("RGB")  # JPEG has no alpha
    write_atomically(path, lambda f: img.save(f, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {})))


def cache_dir() -> Path:
    """Where lightsr keeps what it can rebuild (PSF banks, converted graphs): $LIGHTSR_CACHE,
    else ~/.cache/lightsr. Never in git."""
    return Path(os.environ.get("LIGHTSR_CACHE") or Path.home() / ".cache" / "lightsr")


def _umask() -> int:
    """The process umask, read without changing it where the OS can say (os.umask sets it too)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode a new file gets by default: 0666 less the umask (for files a library wrote
    privately, 0600, in a temporary place before renaming them into place)."""
    return 0o666 & ~_umask()


def write_atomically(path: str | os.PathLike, write) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it into place;
    on any failure the temporary file is removed and ``path`` is left as it was. The file gets
    the mode any new file would (0666 less the umask), not the temporary file's private 0600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_unit_range(pixels, device: torch.device | str | None = None) -> torch.Tensor:
    """(H, W, C) or (N, H, W, C) uint8/uint16 pixels (array or tensor) -> (N, C, H, W) float32
    in [0, 1] on ``device``: the model's input contract. The integers travel to the device
    first (a quarter of the bytes); a read-only array is copied, never written."""
    if isinstance(pixels, np.ndarray):
        pixels = torch.from_numpy(np.require(pixels, requirements=["C", "W"]))
    if pixels.dtype not in (torch.uint8, torch.uint16):
        raise LightSRError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
    maxval = 255.0 if pixels.dtype == torch.uint8 else 65535.0
    batch = pixels[None] if pixels.ndim == 3 else pixels
    return batch.to(device or "cpu", non_blocking=True).permute(0, 3, 1, 2).float().div_(maxval)


def fit_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """(H, W, C) uint8 -> the same image resized (box filter) so its long side is ``long_side``."""
    h, w = rgb.shape[:2]
    f = long_side / max(h, w)
    return np.asarray(Image.fromarray(rgb).resize((max(1, round(w * f)), max(1, round(h * f))), Image.BOX))

"""Rebuild this folder from the two night photographs with real lens flare that packages ship (run on a
Debian machine).

    python data/flare-photos/make.py

It fetches KDE Palapeli's data package (``apt-get download``, no install) and the scikit-image wheel
(``pip download --no-deps``, no install) and writes each listed photo with data/package-photos/make.py's
``build``, as that script does its own (JPEG quality 95, no chroma subsampling, at most 1280 px on the long
side, Lanczos). These are the photos data/package-photos left out because their lamps carry
real starbursts and glow: here that is what they are for.
"""
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _package_make():
    """data/package-photos/make.py as a module (a folder name with a hyphen is not importable): its
    package names and build serve here."""
    spec = importlib.util.spec_from_file_location("package_photos_make", HERE.parent / "package-photos" / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_make = _package_make()
# (source, path inside it, output name, author, licence)
PHOTOS = [
    (_make.PALAPELI, "usr/share/palapeli/collection/cincinnati-bridge.jpg", "roebling-bridge", "Derek Jensen",
     "public domain"),
    (_make.SKIMAGE, "skimage/data/rocket.jpg", "launch-pad", "SpaceX", "public domain"),
]


def main() -> int:
    _make.build(PHOTOS, HERE)
    return 0


if __name__ == "__main__":
    sys.exit(main())

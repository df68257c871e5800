"""Rebuild this folder from Debian's wallpaper packages (run on a Debian machine, as any user).

    python data/debian-photos/make.py

It downloads the four packages with ``apt-get download`` (no install), unpacks them into a
temporary folder, and writes each photo listed in PHOTOS as a JPEG (quality 95, no chroma
subsampling) at most 1280 px on its long side, downscaled with Pillow's Lanczos filter. The
sources are 1.3 to 5 MP wallpapers; downscaling also averages away their JPEG noise, so the
results serve as clean high-resolution targets. Only photographs were picked: renders,
illustrations and gradients from the same packages are left out, and so is one sunset shot
straight into the sun (it carries a real lens flare, which would be a wrong "clean" target).
"""
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
LONG_SIDE = 1280

# package -> where its wallpapers lie inside it ({} is the file, or the Plasma wallpaper's folder)
SOURCES = {
    "lomiri-wallpapers-16.04": "usr/share/backgrounds/{}",
    "lomiri-wallpapers-20.04": "usr/share/backgrounds/{}",
    "mate-backgrounds": "usr/share/backgrounds/mate/nature/{}",
    "plasma-workspace-wallpapers": "usr/share/wallpapers/{}/contents/images/2560x1600.jpg",
}
L16, L20, MATE, PLASMA = SOURCES
# (package, file or folder in it, output name, author, licence)
PHOTOS = [
    (L16, "Bridge_by_Sander_Klootwijk.jpg", "bridge", "Sander Klootwijk", "CC-BY-SA-4.0"),
    (L16, "Dragonfly_by_Bolly.jpg", "dragonfly", "Bolly", "CC-BY-SA-4.0"),
    (L16, "Picture_0B_by_freespace.jpg", "fig", "Trevor \"Freespace\"", "CC-BY-4.0"),
    (L16, "Picture_1A_by_freespace.jpg", "brushes", "Trevor \"Freespace\"", "CC-BY-4.0"),
    (L16, "Wine_by_Jakkub_Mede.jpg", "wine", "Jakub Mede", "CC-BY-4.0"),
    (L16, "aitzgorri_by_Aitzol_Berasategi.jpg", "aitzgorri", "Aitzol Berasategi", "CC-BY-4.0"),
    (L16, "free_by_Peter_Nerlich.jpg", "free", "Peter Nerlich", "CC-BY-SA-4.0"),
    (L16, "friends_by_Aitzol_Berasategi.jpg", "friends", "Aitzol Berasategi", "CC-BY-4.0"),
    (L16, "life_by_Aitzol_Berasategi.jpg", "life", "Aitzol Berasategi", "CC-BY-4.0"),
    (L16, "picosdeeuropa_by_Aitzol_Berasategi.jpg", "picosdeeuropa", "Aitzol Berasategi", "CC-BY-4.0"),
    (L16, "seeding_by_Clements_Engelhardt.jpg", "seeding", "Clemens Engelhardt", "CC0-1.0"),
    (L20, "Kleiber_by_Lukas_Baubkus.jpg", "kleiber", "Lukas Baubkus", "CC-BY-SA-3.0"),
    (MATE, "Aqua.jpg", "aqua", "Charles Barbin", "GPL-2+"),
    (MATE, "Blinds.jpg", "blinds", "Lennart Poettering, Andrea Cimitan", "GPL-2+"),
    (MATE, "Dune.jpg", "dune", "Marco Cogoni, Hylke Bons", "GPL-2+"),
    (MATE, "Garden.jpg", "garden", "Charles Barbin", "GPL-2+"),
    (MATE, "GreenMeadow.jpg", "greenmeadow", "Timothy Schellhase, Lapo Calamandrei", "GPL-2+"),
    (MATE, "LadyBird.jpg", "ladybird", "Charles Barbin", "GPL-2+"),
    (MATE, "RainDrops.jpg", "raindrops", "blackcombwhistler07", "GPL-2+"),
    (MATE, "Storm.jpg", "storm", "Sergey Nazarov", "GPL-2+"),
    (MATE, "TwoWings.jpg", "twowings", "Charles Barbin, Hylke Bons", "GPL-2+"),
    (MATE, "Wood.jpg", "wood", "Jean-François Fortin Tam", "GPL-2+"),
    (MATE, "YellowFlower.jpg", "yellowflower", "Charles Barbin", "GPL-2+"),
    (PLASMA, "BytheWater", "bythewater", "Maciej Wiklo", "LGPL-3"),
    (PLASMA, "ColdRipple", "coldripple", "Risto Saukonpää", "LGPL-3"),
    (PLASMA, "ColorfulCups", "colorfulcups", "Dmitri Popov", "LGPL-3"),
    (PLASMA, "DarkestHour", "darkesthour", "Risto Saukonpää", "LGPL-3"),
    (PLASMA, "EveningGlow", "eveningglow", "Ian Hex", "LGPL-3"),
    (PLASMA, "FallenLeaf", "fallenleaf", "Martin Klapetek", "LGPL-3"),
    (PLASMA, "Grey", "grey", "Sigi Sagi", "LGPL-3"),
    (PLASMA, "Kite", "kite", "Risto Saukonpää", "LGPL-3"),
    (PLASMA, "OneStandsOut", "onestandsout", "Risto Saukonpää", "LGPL-3"),
    (PLASMA, "Path", "path", "Risto Saukonpää", "LGPL-3"),
    (PLASMA, "summer_1am", "summer_1am", "Risto Saukonpää", "LGPL-3"),
]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        packages = sorted({p for p, *_ in PHOTOS})
        subprocess.run(["apt-get", "download", *packages], cwd=tmp, check=True)
        for package in packages:
            deb = next(tmp.glob(f"{package}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / package)], check=True)
        for package, where, name, _, _ in PHOTOS:
            write_photo(tmp / package / SOURCES[package].format(where), HERE / f"{name}.jpg")
    return 0


def write_photo(src: Path, dst: Path) -> None:
    """``src`` as an RGB JPEG at ``dst`` (quality 95, 4:4:4), downscaled (Lanczos) to at most LONG_SIDE px on
    its long side; data/package-photos/make.py writes its photos with it too."""
    im = Image.open(src).convert("RGB")
    scale = LONG_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    im.save(dst, quality=95, subsampling=0)
    print(f"{dst.name} {im.width}x{im.height}")


if __name__ == "__main__":
    sys.exit(main())

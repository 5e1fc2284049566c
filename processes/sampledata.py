"""Deterministic synthetic Sentinel-2-like scenes for demos and tests (no downloads).

``python -m processes.sampledata OUTDIR`` writes ``OUTDIR/s2/<TILE>_<YYYYMMDD>.tif`` for a
2x2 grid of adjacent 256x256-pixel tiles (EPSG:32633, 10 m pixels) on three dates, and
``OUTDIR/manifest.json`` with file bounds and each tile's generated built-up ground truth.

One land-cover map is drawn for the whole 512x512 grid from a seeded numpy Generator
(fields of vegetation and bare soil, a town, a village, farmsteads, a river and a lake)
and then cut into tiles, so the mosaics are seamless. Vegetation vigour follows a season
(spring < summer, some fields harvested by July), and the first date misses a swath
corner in the eastern tiles (nodata 0), as real acquisitions often do.

Spectra are chosen so NDBI > 0.1 and NDVI < 0.3 separate built-up (NDBI ~0.2) from bare
soil (NDBI ~0.0) with a wide margin over the noise: urban-footprint's defaults recover
the ground truth. Same seed, same bytes; a second run only checks hashes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from processes.common.atomic import write_json
from processes.common.raster import S2_BANDS, write_geotiff

#: Bump when the generated content changes, so existing sample data gets regenerated.
VERSION = 1
DEFAULT_SEED = 20240601
CRS = "EPSG:32633"
PIXEL_M = 10.0
TILE_PX = 256
GRID = 2
ORIGIN = (380000.0, 5830000.0)  # upper-left corner of the grid, UTM 33N metres
#: Tile names by (row, column), north row first; MGRS-like but the geometry is synthetic.
TILES = {(0, 0): "T33UUQ", (0, 1): "T33UVQ", (1, 0): "T33UUP", (1, 1): "T33UVP"}
DATES = ("2024-04-15", "2024-06-10", "2024-07-20")
#: Vegetation vigour of an average field on each date (0 bare .. 1 full canopy).
SEASON = (0.55, 0.9, 1.0)
CENTRAL_WAVELENGTH_NM = {"B02": 492, "B03": 560, "B04": 665, "B08": 833, "B11": 1614}

WATER, VEGETATION, BARE, BUILT = 1, 2, 3, 4
CLASS_NAMES = {WATER: "water", VEGETATION: "vegetation", BARE: "bare_soil", BUILT: "built_up"}
#: Mean reflectance x10000 in S2_BANDS order for the classes with a fixed spectrum.
SPECTRA = {
    WATER: (700, 600, 400, 200, 100),
    BARE: (900, 1200, 1600, 2300, 2300),
    BUILT: (1100, 1200, 1300, 1700, 2600),
}


@dataclass
class Landscape:
    """The whole-grid land cover and the per-pixel properties that do not change with date."""

    classes: np.ndarray  # uint8 class codes
    vigour: np.ndarray  # float (n_dates, H, W): vegetation vigour per date
    texture: np.ndarray  # float (H, W): brightness multiplier, same on all bands and dates


def _cuts(rng: np.random.Generator, size: int, low: int, high: int) -> list[int]:
    edges = [0]
    while edges[-1] < size:
        edges.append(min(size, edges[-1] + int(rng.integers(low, high))))
    return edges


def _fields(rng: np.random.Generator, size: int, n_dates: int) -> tuple[np.ndarray, np.ndarray]:
    """Brick-like field parcels: each is vegetation or bare soil, with its own vigour per date."""
    classes = np.empty((size, size), dtype=np.uint8)
    vigour = np.zeros((n_dates, size, size))
    rows = _cuts(rng, size, 20, 60)
    for top, bottom in zip(rows[:-1], rows[1:], strict=True):
        cols = _cuts(rng, size, 20, 70)
        for left, right in zip(cols[:-1], cols[1:], strict=True):
            vegetated = rng.random() < 0.72
            classes[top:bottom, left:right] = VEGETATION if vegetated else BARE
            base = rng.uniform(0.75, 1.0)
            harvested = rng.random() < 0.2
            for d in range(n_dates):
                v = base * SEASON[d] + rng.normal(0, 0.04)
                if harvested and d == n_dates - 1:
                    v = 0.25
                vigour[d, top:bottom, left:right] = np.clip(v, 0.2, 1.0)
    return classes, vigour


def _buildings(rng: np.random.Generator, classes: np.ndarray, centre: tuple[float, float], n: int,
               spread: float, sizes: tuple[int, int]) -> None:
    size = classes.shape[0]
    for _ in range(n):
        cy, cx = rng.normal(centre, spread)
        h, w = rng.integers(sizes[0], sizes[1], size=2)
        top, left = int(np.clip(cy - h / 2, 0, size - h)), int(np.clip(cx - w / 2, 0, size - w))
        classes[top:top + h, left:left + w] = BUILT


def _water(rng: np.random.Generator, classes: np.ndarray) -> None:
    size = classes.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    phase1, phase2 = rng.uniform(0, 2 * np.pi, size=2)
    centre = 300 + 40 * np.sin(2 * np.pi * xx / 420 + phase1) + 12 * np.sin(2 * np.pi * xx / 130 + phase2)
    classes[np.abs(yy - centre) < 6] = WATER
    classes[((yy - 440) / 28.0) ** 2 + ((xx - 110) / 42.0) ** 2 < 1] = WATER


def landscape(seed: int) -> Landscape:
    """Draw the land cover of the whole grid from ``seed``."""
    rng = np.random.default_rng(seed)
    size = GRID * TILE_PX
    classes, vigour = _fields(rng, size, len(DATES))
    _buildings(rng, classes, (130.0, 150.0), n=90, spread=55.0, sizes=(6, 22))  # town
    _buildings(rng, classes, (400.0, 390.0), n=18, spread=22.0, sizes=(5, 12))  # village
    for _ in range(14):  # farmsteads
        _buildings(rng, classes, tuple(rng.uniform(0, size, 2)), n=2, spread=3.0, sizes=(3, 6))
    _water(rng, classes)
    texture = np.clip(rng.normal(1.0, 0.05, (size, size)), 0.8, 1.2)
    return Landscape(classes, vigour, texture)


def _reflectance(land: Landscape, date_index: int, rng: np.random.Generator) -> np.ndarray:
    """Five-band uint16 reflectance x10000 of the whole grid on one date."""
    classes = land.classes
    out = np.zeros((len(S2_BANDS), *classes.shape))
    for code, spectrum in SPECTRA.items():
        out[:, classes == code] = np.asarray(spectrum, dtype=float)[:, None]
    veg = classes == VEGETATION
    v = land.vigour[date_index][veg]
    veg_spectrum = (500 - 200 * v, 800 - 200 * v, 900 - 650 * v, 2000 + 2500 * v, 2200 - 600 * v)
    for band, values in enumerate(veg_spectrum):
        out[band, veg] = values
    out *= land.texture
    out *= 1 + rng.normal(0, 0.02, out.shape)
    return np.clip(np.rint(out), 1, 10000).astype(np.uint16)


def _swath_gap(date_index: int) -> np.ndarray:
    """Pixels outside the acquisition swath (first date only, eastern tiles only)."""
    size = GRID * TILE_PX
    yy, xx = np.mgrid[0:size, 0:size]
    gap = xx + 0.35 * yy > 470
    return gap if date_index == 0 else np.zeros_like(gap)


def _tile_bounds(row: int, col: int) -> list[float]:
    left = ORIGIN[0] + col * TILE_PX * PIXEL_M
    top = ORIGIN[1] - row * TILE_PX * PIXEL_M
    return [left, top - TILE_PX * PIXEL_M, left + TILE_PX * PIXEL_M, top]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_current(outdir: Path, seed: int) -> dict[str, Any] | None:
    """The existing manifest if it is for this version and seed and every file is intact."""
    try:
        manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("version") != VERSION or manifest.get("seed") != seed:
        return None
    try:
        for entry in manifest["files"]:
            path = outdir / entry["path"]
            if not path.is_file() or path.stat().st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
                return None
    except (KeyError, TypeError):
        return None
    return manifest


def _write_scene(path: Path, data: np.ndarray, bounds: list[float], tile: str, date: str, seed: int) -> None:
    profile = {
        "driver": "GTiff", "dtype": "uint16", "nodata": 0, "width": TILE_PX, "height": TILE_PX,
        "crs": CRS, "transform": Affine(PIXEL_M, 0, bounds[0], 0, -PIXEL_M, bounds[3]),
        "compress": "deflate", "predictor": 2, "interleave": "band",
        "tiled": True, "blockxsize": TILE_PX, "blockysize": TILE_PX,
    }
    tags = {"TILE": tile, "DATE": date, "BOA_QUANTIFICATION_VALUE": 10000, "SPACECRAFT_NAME": "synthetic",
            "GENERATOR": f"processes.sampledata version {VERSION} seed {seed}"}
    write_geotiff(path, data, profile, descriptions=S2_BANDS, tags=tags)


def generate(outdir: Path, seed: int = DEFAULT_SEED, force: bool = False) -> dict[str, Any]:
    """Write the scenes and manifest under ``outdir`` unless already current; return the manifest."""
    outdir = Path(outdir)
    if not force and (current := _is_current(outdir, seed)) is not None:
        return current
    land = landscape(seed)
    tiles: dict[str, Any] = {}
    files: list[dict[str, Any]] = []
    for (row, col), tile in sorted(TILES.items()):
        window = np.s_[row * TILE_PX:(row + 1) * TILE_PX, col * TILE_PX:(col + 1) * TILE_PX]
        classes = land.classes[window]
        built = int((classes == BUILT).sum())
        bounds = _tile_bounds(row, col)
        tiles[tile] = {
            "bounds": bounds, "crs": CRS, "width": TILE_PX, "height": TILE_PX, "pixel_size_m": PIXEL_M,
            "ground_truth": {
                "built_up_pixels": built,
                "built_up_fraction": built / classes.size,
                "built_up_area_m2": built * PIXEL_M * PIXEL_M,
                "class_pixels": {name: int((classes == code).sum()) for code, name in CLASS_NAMES.items()},
            },
        }
        for d, date in enumerate(DATES):
            rng = np.random.default_rng([seed, row, col, d])
            data = _reflectance(land, d, rng)[(slice(None), *window)]
            data[:, _swath_gap(d)[window]] = 0
            rel = f"s2/{tile}_{date.replace('-', '')}.tif"
            _write_scene(outdir / rel, data, bounds, tile, date, seed)
            files.append({
                "path": rel, "tile": tile, "date": date, "bounds": bounds, "crs": CRS,
                "valid_pixels": int((data[0] != 0).sum()),
                "bytes": (outdir / rel).stat().st_size, "sha256": _sha256(outdir / rel),
            })
    manifest = {
        "version": VERSION, "seed": seed, "crs": CRS, "pixel_size_m": PIXEL_M, "nodata": 0,
        "bands": list(S2_BANDS), "reflectance_scale": 10000, "dates": list(DATES),
        "bounds": [min(t["bounds"][0] for t in tiles.values()), min(t["bounds"][1] for t in tiles.values()),
                   max(t["bounds"][2] for t in tiles.values()), max(t["bounds"][3] for t in tiles.values())],
        "tiles": tiles, "files": files,
    }
    write_json(outdir / "manifest.json", manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m processes.sampledata OUTDIR [--seed N] [--force]``."""
    parser = argparse.ArgumentParser(prog="python -m processes.sampledata",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--force", action="store_true", help="regenerate even if the files are current")
    args = parser.parse_args(argv)
    manifest = generate(args.outdir, args.seed, args.force)
    total = sum(f["bytes"] for f in manifest["files"])
    print(f"{len(manifest['files'])} scenes, {total / 1e6:.1f} MB, manifest {args.outdir / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

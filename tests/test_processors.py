"""The shipped processors, run as real subprocesses exactly as processes/DESCRIPTOR.md says.

A small in-test workflow runner plays the gateway: for each step of a descriptor it starts
``executionUnit.command + [step]`` once per split chunk, with ``WPS_TASK`` in the
environment and a fresh sandbox as working directory, then chains the steps.
"""

from __future__ import annotations

import functools
import http.server
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from rasterio.coords import BoundingBox
from rasterio.transform import rowcol

from processes.sampledata import generate

REPO = Path(__file__).resolve().parents[1]
PROCESSES = REPO / "processes"
# The thematic processors; the built-in batch process has no code of its own (its tasks are a task list's).
DESCRIPTORS = sorted(p for p in PROCESSES.glob("*/descriptor.yaml") if p.parent.name != "batch")
TASK_TIMEOUT = 60


# --------------------------------------------------------------------------- gateway stand-in

def load(folder: str) -> dict[str, Any]:
    return yaml.safe_load((PROCESSES / folder / "descriptor.yaml").read_text())


def command(descriptor: dict[str, Any], step: str) -> list[str]:
    """The contract's command; ``python`` is this interpreter, as the local backend would run it."""
    cmd = [*descriptor["executionUnit"]["command"], step]
    return [sys.executable if cmd[0] == "python" else cmd[0], *cmd[1:]]


def run_task(descriptor: dict[str, Any], step: str, job_dir: Path, inputs: dict[str, Any],
             items: list[str] | None = None, index: int = 0, count: int = 1,
             dep_dirs: dict[str, Path] | None = None, env: dict[str, str] | None = None,
             fetch: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    sandbox = job_dir / "sandbox" / f"{step}-{index}"
    sandbox.mkdir(parents=True, exist_ok=True)
    task = {
        "job_id": job_dir.name, "process_id": descriptor["processDescription"]["id"],
        "process_version": descriptor["processDescription"]["version"],
        "step": step, "index": index, "count": count, "items": items or [], "inputs": inputs,
        "step_dir": str(job_dir / "steps" / step),
        "dep_dirs": {name: str(path) for name, path in (dep_dirs or {}).items()},
        "outputs_dir": str(job_dir / "outputs"),
    }
    if fetch is not None:
        task["fetch"] = fetch
    (job_dir / "steps" / step).mkdir(parents=True, exist_ok=True)
    (job_dir / "outputs").mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ, PYTHONPATH=str(REPO), WPS_TASK=json.dumps(task),
                    NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    full_env.update(env or {})
    return subprocess.run(command(descriptor, step), cwd=sandbox, env=full_env, capture_output=True,
                          text=True, timeout=TASK_TIMEOUT)


def run_workflow(folder: str, inputs: dict[str, Any], job_dir: Path) -> Path:
    """Run every step in order (split steps in parallel); return the outputs dir."""
    descriptor = load(folder)
    for step in descriptor["workflow"]["steps"]:
        deps = {dep: job_dir / "steps" / dep for dep in step.get("depends_on", [])}
        split = step.get("split")
        if split:
            values = inputs[split["input"]]
            chunks = [values[i:i + split["chunk"]] for i in range(0, len(values), split["chunk"])]
        else:
            chunks = [[]]
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(run_task, descriptor, step["id"], job_dir, inputs, chunk, index, len(chunks),
                                   deps) for index, chunk in enumerate(chunks)]
        for result in (future.result() for future in futures):
            assert result.returncode == 0, f"{folder}/{step['id']} failed:\n{result.stderr}"
    return job_dir / "outputs"


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def read_plain(path: Path, band: int) -> np.ndarray:
    """A band as float64 with NaN at nodata, read without any help from processes.common."""
    with rasterio.open(path) as src:
        data = src.read(band).astype(np.float64)
        if src.nodata is not None and not np.isnan(src.nodata):
            data[src.read(band) == src.nodata] = np.nan
    return data


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    outdir = tmp_path_factory.mktemp("sample")
    return outdir, generate(outdir)


def scene_urls(sample: tuple[Path, dict[str, Any]], date: str | None = None) -> list[str]:
    outdir, manifest = sample
    return [(outdir / f["path"]).as_uri() for f in manifest["files"] if date in (None, f["date"])]


@pytest.fixture(scope="module")
def ndvi_job(sample, tmp_path_factory) -> Path:
    job = tmp_path_factory.mktemp("ndvi-job")
    run_workflow("ndvi_mosaic", {"scenes": scene_urls(sample)}, job)
    return job


@pytest.fixture(scope="module")
def urban_job(sample, tmp_path_factory) -> Path:
    """Last date (full coverage); literals omitted, so the descriptor defaults apply."""
    job = tmp_path_factory.mktemp("urban-job")
    run_workflow("urban_footprint", {"tiles": scene_urls(sample, sample[1]["dates"][-1])}, job)
    return job


# --------------------------------------------------------------------------- descriptors

@pytest.mark.parametrize("path", DESCRIPTORS, ids=lambda p: p.parent.name)
def test_descriptor_parses_and_has_required_keys(path: Path) -> None:
    desc = yaml.safe_load(path.read_text())
    pd = desc["processDescription"]
    for key in ("id", "version", "title", "description", "inputs", "outputs"):
        assert pd.get(key), key
    assert all(c.isalnum() or c in "_.-" for c in pd["id"])
    for name, spec in pd["inputs"].items():
        assert "schema" in spec and "title" in spec, name
        assert spec["schema"].get("contentMediaType") or spec["schema"].get("oneOf") or spec["schema"].get(
            "format") == "ogc-bbox" or spec["schema"]["type"] in ("number", "integer", "string", "boolean"), name
    for name, spec in pd["outputs"].items():
        assert spec.get("file") and "/" not in spec["file"], name
        assert "schema" in spec, name
    unit = desc["executionUnit"]
    assert unit["image"] and unit["command"][:2] == ["python", "-m"]
    module = importlib.import_module(unit["command"][2])
    steps = desc["workflow"]["steps"]
    assert [s["id"] for s in steps] == list(module.STEPS)
    seen: set[str] = set()
    for step in steps:
        assert set(step.get("depends_on", [])) <= seen, "depends_on must name earlier steps"
        if "split" in step:
            assert step["split"]["input"] in pd["inputs"] and step["split"]["chunk"] >= 1
        assert {"cpus", "mem"} <= set(step["resources"])
        assert step["timeout"] > 0 and step["retries"] >= 0
        seen.add(step["id"])


# --------------------------------------------------------------------------- sample data

def test_sampledata_is_deterministic_and_rerun_is_quick(sample, tmp_path: Path) -> None:
    outdir, manifest = sample
    again = generate(tmp_path)
    assert again == manifest
    names = sorted(p.relative_to(outdir) for p in outdir.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for name in names:
        assert (outdir / name).read_bytes() == (tmp_path / name).read_bytes(), name
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.tif")}
    start = time.perf_counter()
    assert generate(tmp_path) == manifest
    assert time.perf_counter() - start < 1.0
    assert mtimes == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.tif")}
    assert sum(f["bytes"] for f in manifest["files"]) < 8e6


def test_sampledata_scenes_match_manifest(sample) -> None:
    outdir, manifest = sample
    assert len(manifest["files"]) == 12 and len(manifest["tiles"]) == 4
    for entry in manifest["files"]:
        with rasterio.open(outdir / entry["path"]) as src:
            assert src.descriptions == ("B02", "B03", "B04", "B08", "B11")
            assert src.dtypes[0] == "uint16" and src.nodata == 0 and src.crs.to_epsg() == 32633
            assert src.res == (10.0, 10.0) and (src.width, src.height) == (256, 256)
            assert list(src.bounds) == entry["bounds"] == manifest["tiles"][entry["tile"]]["bounds"]
            assert int((src.read(1) != 0).sum()) == entry["valid_pixels"]
    union = manifest["bounds"]
    assert (union[2] - union[0], union[3] - union[1]) == (5120.0, 5120.0)
    assert sum((b[2] - b[0]) * (b[3] - b[1]) for b in (t["bounds"] for t in manifest["tiles"].values())) \
        == 5120.0 * 5120.0  # adjacent, no overlap, no gap
    fractions = [t["ground_truth"]["built_up_fraction"] for t in manifest["tiles"].values()]
    assert max(fractions) > 0.1  # there is a town to find


# --------------------------------------------------------------------------- ndvi-mosaic

def ndvi_outputs(job: Path) -> dict[str, Path]:
    """NDVI raster of each input URL, found through the SOURCE tag the step writes."""
    outputs = {}
    for path in (job / "steps" / "ndvi").glob("*.tif"):
        with rasterio.open(path) as src:
            outputs[src.tags()["SOURCE"]] = path
    return outputs


def test_ndvi_equals_numpy_at_sampled_pixels(sample, ndvi_job: Path) -> None:
    outputs = ndvi_outputs(ndvi_job)
    assert set(outputs) == set(scene_urls(sample))
    rng = np.random.default_rng(7)
    rows, cols = rng.integers(0, 256, 300), rng.integers(0, 256, 300)
    for url, path in outputs.items():
        scene = Path(url.removeprefix("file://"))
        red, nir = read_plain(scene, 3), read_plain(scene, 4)  # B04, B08
        expected = (nir - red) / (nir + red)
        with rasterio.open(path) as src:
            assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
            got = src.read(1)
        np.testing.assert_allclose(got[rows, cols], expected[rows, cols], rtol=1e-6, atol=1e-7)
        assert np.array_equal(np.isnan(got), np.isnan(expected))


def test_mosaic_covers_union_and_takes_max(sample, ndvi_job: Path) -> None:
    outdir, manifest = sample
    with rasterio.open(ndvi_job / "outputs" / "mosaic.tif") as src:
        assert src.bounds == BoundingBox(*manifest["bounds"])
        assert src.crs.to_epsg() == 32633 and src.res == (10.0, 10.0)
        mosaic = src.read(1)
        transform = src.transform
    assert not np.isnan(mosaic).any()  # the swath gap of the first date is filled by later dates
    by_tile: dict[str, list[np.ndarray]] = {}
    for path in ndvi_outputs(ndvi_job).values():
        with rasterio.open(path) as src:
            by_tile.setdefault(src.tags()["TILE"], []).append(src.read(1))
    for tile, arrays in by_tile.items():
        left, _, _, top = manifest["tiles"][tile]["bounds"]
        row, col = rowcol(transform, left + 5, top - 5)  # centre of the tile's upper-left pixel
        window = mosaic[row:row + 256, col:col + 256]
        np.testing.assert_array_equal(window, np.nanmax(np.stack(arrays), axis=0))


def test_ndvi_statistics_consistent_with_mosaic(sample, ndvi_job: Path) -> None:
    _, manifest = sample
    outputs = ndvi_job / "outputs"
    stats = json.loads((outputs / "statistics.json").read_text())
    with rasterio.open(outputs / "mosaic.tif") as src:
        values = src.read(1).astype(np.float64)
    values = values[np.isfinite(values)]
    overall = stats["mosaic"]
    assert overall["valid_pixels"] == values.size == 512 * 512
    assert overall["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert overall["min"] == pytest.approx(values.min()) and overall["max"] == pytest.approx(values.max())
    assert overall["std"] == pytest.approx(values.std(), rel=1e-9)
    assert overall["bounds"] == manifest["bounds"]
    assert float((outputs / "mean_ndvi.txt").read_text()) == overall["mean"]
    expected = {(f["tile"], f["date"]): f["valid_pixels"] for f in manifest["files"]}
    assert {(s["tile"], s["date"]): s["valid_pixels"] for s in stats["scenes"]} == expected
    for scene in stats["scenes"]:
        assert -1 <= scene["min"] <= scene["mean"] <= scene["max"] <= overall["max"]
    spring, summer = (np.mean([s["mean"] for s in stats["scenes"] if s["date"] == d])
                      for d in manifest["dates"][:2])
    assert summer > spring  # vegetation vigour grows with the season


def test_ndvi_reads_http_input(sample, ndvi_job: Path, tmp_path: Path) -> None:
    outdir, manifest = sample
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(outdir))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            entry = manifest["files"][0]
            url = f"http://127.0.0.1:{server.server_address[1]}/{entry['path']}"
            result = run_task(load("ndvi_mosaic"), "ndvi", tmp_path, {"scenes": [url]}, [url],
                              fetch={"allowed_hosts": [f"127.0.0.1:{server.server_address[1]}"]})
        finally:
            server.shutdown()
    assert result.returncode == 0, result.stderr
    (produced,) = (tmp_path / "steps" / "ndvi").glob("*.tif")
    reference = ndvi_outputs(ndvi_job)[(outdir / entry["path"]).as_uri()]
    with rasterio.open(produced) as a, rasterio.open(reference) as b:
        assert a.tags()["TILE"] == entry["tile"] and a.tags()["DATE"] == entry["date"]
        np.testing.assert_array_equal(a.read(1), b.read(1))


# --------------------------------------------------------------------------- urban-footprint

def test_built_up_fraction_matches_ground_truth(sample, urban_job: Path) -> None:
    _, manifest = sample
    stats = json.loads((urban_job / "outputs" / "statistics.json").read_text())
    defaults = {k: v["schema"]["default"] for k, v in load("urban_footprint")["processDescription"]["inputs"].items()
                if "default" in v["schema"]}
    assert stats["parameters"] == defaults
    assert sorted(t["tile"] for t in stats["tiles"]) == sorted(manifest["tiles"])
    for tile in stats["tiles"]:
        truth = manifest["tiles"][tile["tile"]]["ground_truth"]
        assert tile["pixel_area_m2"] == 100.0
        assert tile["built_up_fraction"] == pytest.approx(truth["built_up_fraction"], abs=0.01)
        assert tile["built_up_area_m2"] == pytest.approx(truth["built_up_area_m2"], rel=0.05, abs=2e4)


def test_total_area_is_sum_of_tiles_and_matches_footprint(sample, urban_job: Path) -> None:
    _, manifest = sample
    outputs = urban_job / "outputs"
    stats = json.loads((outputs / "statistics.json").read_text())
    per_tile = sum(t["built_up_area_m2"] for t in stats["tiles"])
    total_km2 = float((outputs / "total_area_km2.txt").read_text())
    assert total_km2 == pytest.approx(per_tile / 1e6, rel=1e-12)
    assert stats["total"]["built_up_area_km2"] == total_km2
    with rasterio.open(outputs / "footprint.tif") as src:
        assert src.bounds == BoundingBox(*manifest["bounds"]) and src.dtypes[0] == "uint8" and src.nodata == 255
        footprint = src.read(1)
    assert set(np.unique(footprint)) <= {0, 1}
    assert int((footprint == 1).sum()) * 100.0 == pytest.approx(per_tile)
    assert stats["mosaic"]["built_up_area_m2"] == pytest.approx(per_tile)


def test_literal_threshold_is_applied(sample, tmp_path: Path) -> None:
    outdir, manifest = sample
    town = max(manifest["tiles"], key=lambda t: manifest["tiles"][t]["ground_truth"]["built_up_fraction"])
    urls = [u for u in scene_urls(sample, manifest["dates"][-1]) if town in u]
    outputs = run_workflow("urban_footprint", {"tiles": urls, "ndbi_threshold": 0.9, "ndvi_max": 0.3}, tmp_path)
    assert float((outputs / "total_area_km2.txt").read_text()) == 0.0
    assert json.loads((outputs / "statistics.json").read_text())["parameters"]["ndbi_threshold"] == 0.9


# --------------------------------------------------------------------------- failures

@pytest.fixture
def bad_inputs(tmp_path: Path) -> Iterator[dict[str, Path]]:
    not_tiff = tmp_path / "T33UUP_20240601.tif"
    not_tiff.write_text("this is not a GeoTIFF\n")
    three_bands = tmp_path / "three_bands.tif"
    with rasterio.open(three_bands, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint16",
                       crs="EPSG:32633", transform=Affine(10, 0, 380000, 0, -10, 5830000)) as dst:
        dst.write(np.ones((3, 8, 8), dtype=np.uint16))
        dst.descriptions = ("B02", "B03", "B04")
    yield {"not_tiff": not_tiff, "three_bands": three_bands}


def test_corrupt_input_fails_with_readable_reason(bad_inputs, tmp_path: Path) -> None:
    url = bad_inputs["not_tiff"].as_uri()
    result = run_task(load("ndvi_mosaic"), "ndvi", tmp_path / "job", {"scenes": [url]}, [url])
    assert result.returncode == 1
    assert last_line(result.stderr) == f"{url}: not a readable GeoTIFF"
    assert not list((tmp_path / "job" / "steps" / "ndvi").iterdir())  # nothing half-written


def test_missing_bands_fail_with_readable_reason(bad_inputs, tmp_path: Path) -> None:
    url = bad_inputs["three_bands"].as_uri()
    result = run_task(load("urban_footprint"), "classify", tmp_path / "job", {"tiles": [url]}, [url])
    assert result.returncode == 1
    assert last_line(result.stderr) == f"{url}: missing band(s) B08, B11 (bands found: B02, B03, B04)"


def test_missing_input_file_and_missing_wps_task(tmp_path: Path) -> None:
    url = (tmp_path / "nowhere.tif").as_uri()
    result = run_task(load("ndvi_mosaic"), "ndvi", tmp_path / "job", {"scenes": [url]}, [url])
    assert result.returncode == 1 and last_line(result.stderr) == f"{url}: input file not found"
    env = {k: v for k, v in os.environ.items() if k != "WPS_TASK"}
    result = subprocess.run(command(load("ndvi_mosaic"), "mosaic"), cwd=tmp_path, capture_output=True, text=True,
                            env=dict(env, PYTHONPATH=str(REPO)), timeout=TASK_TIMEOUT)
    assert result.returncode == 1 and "WPS_TASK is not set" in last_line(result.stderr)

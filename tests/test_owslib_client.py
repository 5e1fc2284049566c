"""OWSLib's WebProcessingService, unmodified, against the gateway served on 127.0.0.1."""

from __future__ import annotations

import json

import rasterio
from owslib.wps import ComplexDataInput, WebProcessingService, monitorExecution

GEOTIFF = "image/tiff; application=geotiff"


def test_owslib_capabilities_describe_and_async_execute(live_gateway, scenes, tmp_path):
    wps = WebProcessingService(live_gateway.url, version="1.0.0")
    assert {"ndvi-mosaic", "urban-footprint"} <= {p.identifier for p in wps.processes}

    process = wps.describeprocess("urban-footprint")
    assert {i.identifier for i in process.dataInputs} == {"tiles", "ndbi_threshold", "ndvi_max"}
    assert {o.identifier for o in process.processOutputs} == {"footprint", "statistics", "total_area_km2"}

    tiles = [p for p in scenes if "20240720" in p.name]
    inputs = [("tiles", ComplexDataInput(p.as_uri(), mimeType=GEOTIFF)) for p in tiles]
    inputs.append(("ndbi_threshold", "0.1"))
    execution = wps.execute("urban-footprint", inputs,
                            output=[("footprint", True), ("statistics", True), ("total_area_km2", False)],
                            mode="async")
    assert execution.statusLocation.startswith(live_gateway.url.rsplit("/wps", 1)[0])
    monitorExecution(execution, sleepSecs=0.2)
    assert execution.isSucceded(), execution.errors

    outputs = {o.identifier: o for o in execution.processOutputs}
    footprint_file = tmp_path / "footprint.tif"
    execution.getOutput(str(footprint_file), identifier="footprint")
    with rasterio.open(footprint_file) as ds:
        mask = ds.read(1)
        assert set(int(v) for v in set(mask.ravel().tolist())) <= {0, 1, 255}
        pixel_area = abs(ds.transform.a * ds.transform.e)
    stats_file = tmp_path / "statistics.json"
    execution.getOutput(str(stats_file), identifier="statistics")
    stats = json.loads(stats_file.read_text())
    total_km2 = float(outputs["total_area_km2"].data[0])
    assert abs(total_km2 - stats["total"]["built_up_area_m2"] / 1e6) < 1e-6
    assert abs((mask == 1).sum() * pixel_area / 1e6 - total_km2) < 1e-6

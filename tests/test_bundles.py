"""Processor bundles: packed once per version, fetched once per machine, then served from the cache."""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import replace

from processes.bundle import build_bundle
from processes.registry import discover

from .conftest import build_gateway, close_gateway
from .jobs_support import attempts_of, job_id_of
from .mesos_support import mesos_gateway, outputs_of, start_master, submit


def test_a_bundle_is_reproducible_and_a_changed_processor_is_a_new_bundle(tmp_path):
    processor = discover()["ndvi-mosaic"]
    first = build_bundle(processor, tmp_path / "a")
    again = build_bundle(processor, tmp_path / "b")
    assert first.digest == again.digest and first.path.read_bytes() == again.path.read_bytes()
    with tarfile.open(first.path) as archive:
        names = archive.getnames()
    assert "processes/ndvi_mosaic/task.py" in names and "processes/common/raster.py" in names
    assert not any("__pycache__" in n or "urban_footprint" in n for n in names)

    copy = tmp_path / "custom" / "ndvi"
    shutil.copytree(processor.source, copy)
    changed = replace(processor, source=str(copy))
    (copy / "task.py").write_text((copy / "task.py").read_text() + "\n# a new version\n")
    assert build_bundle(changed, tmp_path / "a").digest != first.digest


def test_the_local_backend_unpacks_a_bundle_once_and_shares_it_read_only(tmp_path, sample_data, scenes,
                                                                          wps100_schema):
    gateway = build_gateway(tmp_path / "var", sample_data)
    try:
        tiles = [s for s in scenes if "20240610" in s.name][:2]
        for _ in range(2):
            outputs_of(gateway, submit(gateway, "urban-footprint", "tiles", tiles), wps100_schema)
        cache = gateway.runner.dispatcher.backend.fetch_cache
        assert cache.downloads == 1 and cache.hits == 5  # 3 tasks a job, the first of all fetched
        (entry,) = [p for p in cache.root.iterdir() if not p.name.startswith(".")]
        code = entry / "processes" / "urban_footprint" / "task.py"
        assert not os.access(code, os.W_OK) or os.geteuid() == 0  # root writes anyway; modes say read-only
        assert code.stat().st_mode & 0o222 == 0 and (entry / "processes").stat().st_mode & 0o222 == 0
        assert list(entry.rglob("__pycache__/task*.pyc"))  # compiled once, in the cache
        for sandbox in gateway.settings.sandbox_dir.iterdir():  # every task ran the shared code, not a copy
            link = sandbox / "processes"
            assert link.is_symlink() and link.resolve() == (entry / "processes").resolve()
    finally:
        close_gateway(gateway)


def test_a_mesos_agent_fetches_a_bundle_once_and_the_next_job_only_hits_its_cache(tmp_path, sample_data, scenes,
                                                                                  wps100_schema):
    master = start_master(tmp_path / "mesos", agents=1)
    gateway = mesos_gateway(tmp_path / "var", sample_data, master.leader.address)
    try:
        (agent,) = [record.agent for record in master.cluster.agents.values()]
        tiles = [s for s in scenes if "20240610" in s.name][:2]
        first = submit(gateway, "urban-footprint", "tiles", tiles)
        outputs_of(gateway, first, wps100_schema)
        assert agent.fetches == 1
        second = submit(gateway, "urban-footprint", "tiles", tiles)
        outputs_of(gateway, second, wps100_schema)
        assert agent.fetches == 1, "the second job fetched the bundle again"
        assert agent.cache_hits == len(attempts_of(gateway, job_id_of(first))) * 2 - 1
    finally:
        close_gateway(gateway)
        master.stop()

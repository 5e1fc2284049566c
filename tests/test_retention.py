"""Retention: dismissed jobs lose their files at once, finished jobs go after their status's retention,
old sandboxes and unused bundles go too; nothing active is touched."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from wps_gateway.cli import main as cli
from wps_gateway.config import ConfigError, load_settings
from wps_gateway.gc import Collector, parse_retention
from wps_gateway.runner import retention_for
from wps_gateway.store.models import AttemptEvent, Job, JobStatus, Task, TaskAttempt, utcnow

from .conftest import build_gateway, close_gateway, gateway_environ
from .jobs_support import attempts_of, job_of, submit_sleepy, wait_for


def test_retention_settings() -> None:
    keep = parse_retention("failed:12h, dismissed:never")
    assert keep["failed"] == timedelta(hours=12) and keep["dismissed"] is None
    assert keep["successful"] == timedelta(days=30) and keep["sandboxes"] == timedelta(days=7)
    for bad in ("running:1d", "failed:soon", "failed"):
        with pytest.raises(ValueError):
            parse_retention(bad)


def test_a_bad_retention_is_a_configuration_error(tmp_path, sample_data) -> None:
    with pytest.raises(ConfigError, match="retention"):
        load_settings(environ=gateway_environ(tmp_path, sample_data, "http://x/wps", GATEWAY_RETENTION="ok:1d"))


def finished_job(gateway, numbers=(2,)) -> str:
    job_id = submit_sleepy(gateway, list(numbers), seconds=0)
    wait_for(lambda: job_of(gateway, job_id).status in JobStatus.FINAL)
    return job_id


def age(gateway, job_id: str, days: float) -> None:
    with gateway.store.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(finished=utcnow() - timedelta(days=days)))


def test_jobs_past_retention_lose_their_detail_and_keep_their_record(tmp_path, sample_data, monkeypatch, capsys):
    data_dir = tmp_path / "var"
    for key, value in gateway_environ(data_dir, sample_data, "http://localhost/wps",
                                      GATEWAY_RETENTION="successful:1d, records:365d").items():
        monkeypatch.setenv(key, value)
    gateway = build_gateway(data_dir, sample_data, GATEWAY_RETENTION="successful:1d, records:365d")
    try:
        old, recent = finished_job(gateway), finished_job(gateway)
        sandboxes = [a.sandbox for a in attempts_of(gateway, old)]
        cost = gateway.client.get(f"/jobs/{old}").json["usage"]
        age(gateway, old, 2)
        assert cli(["gc", "--dry-run"]) == 0
        assert "would remove: 1 job(s) past retention" in capsys.readouterr().out
        assert attempts_of(gateway, old)
        assert cli(["gc"]) == 0
        assert "removed: 1 job(s) past retention" in capsys.readouterr().out
        with gateway.store.session() as s:
            job = s.get(Job, old)
            assert job.status == JobStatus.SUCCESSFUL and job.expired is not None and job.outputs == {}
            assert not s.scalars(select(Task).where(Task.job_id == old)).all()
            assert s.scalar(select(func.count()).select_from(TaskAttempt)) == len(attempts_of(gateway, recent))
            assert s.scalar(select(func.count()).select_from(AttemptEvent)) > 0
        assert not (gateway.settings.jobs_dir / old).exists() and (gateway.settings.jobs_dir / recent).exists()
        assert sandboxes and not any(os.path.exists(p) for p in sandboxes)
        # the accounting record outlives the detail: the job still costs what it cost
        assert gateway.client.get(f"/accounting?job={old}").json["total"]["cpu_hours_allocated"] == \
            pytest.approx(cost["cpu_hours_allocated"])
        with gateway.store.session() as s:  # a year on, the record goes too
            s.execute(update(Job).where(Job.id == old).values(expired=utcnow() - timedelta(days=366)))
        assert cli(["gc"]) == 0
        assert "1 job record(s)" in capsys.readouterr().out
        with gateway.store.session() as s:
            assert s.get(Job, old) is None and s.get(Job, recent) is not None
    finally:
        close_gateway(gateway)


def test_a_dismissed_jobs_files_go_at_once_its_row_stays(tmp_path, sample_data, monkeypatch):
    monkeypatch.setattr(Collector, "first_pass", 0.1)  # the active dispatcher's collector, without waiting
    monkeypatch.setattr(Collector, "interval", 0.2)  # and again after the dismissal (the first pass is long past)
    gateway = build_gateway(tmp_path / "var", sample_data)
    try:
        job_id = submit_sleepy(gateway, [1, 2], seconds=30)
        wait_for(lambda: any(a.status == "running" for a in attempts_of(gateway, job_id)))
        gateway.client.delete(f"/jobs/{job_id}")
        wait_for(lambda: not (gateway.settings.jobs_dir / job_id).exists(), what="the dismissed job's files gone")
        assert job_of(gateway, job_id).status == JobStatus.DISMISSED
        assert gateway.client.get(f"/jobs/{job_id}").json["status"] == "dismissed"
    finally:
        close_gateway(gateway)


def test_old_sandboxes_and_unused_bundles_go_active_ones_stay(tmp_path, sample_data, scenes):
    gateway = build_gateway(tmp_path / "var", sample_data)
    try:
        tiles = [s for s in scenes if "20240610" in s.name][:1]
        gateway.client.get("/wps", {"service": "WPS", "request": "Execute", "version": "1.0.0",
                                    "identifier": "urban-footprint", "storeExecuteResponse": "true",
                                    "DataInputs": f"tiles=@xlink:href={tiles[0].as_uri()}", "status": "true"})
        wait_for(lambda: gateway.store.sessions().scalar(select(func.count()).select_from(Job).where(
            Job.status == JobStatus.SUCCESSFUL)) == 1, timeout=60)
        running = submit_sleepy(gateway, [5], seconds=30)
        wait_for(lambda: any(a.status == "running" for a in attempts_of(gateway, running)))
        settings = gateway.settings
        for folder, days in [*((p, 8) for p in settings.sandbox_dir.iterdir()),
                             *((p, 31) for p in settings.cache_dir.iterdir())]:
            past = time.time() - days * 86400
            os.utime(folder, (past, past))
        collected = retention_for(settings, gateway.store).collect()
        live = [a.sandbox for a in attempts_of(gateway, running) if a.status == "running"]
        assert collected.sandboxes == 2  # the finished job's two; the running task's stays
        assert collected.cache_entries == 2  # both processors' bundles, not fetched "for 31 days"
        assert [str(p) for p in settings.sandbox_dir.iterdir()] == live
        assert not [p for p in settings.cache_dir.iterdir() if not p.name.startswith(".")]
    finally:
        close_gateway(gateway)


def test_a_finished_job_in_its_retention_is_left_alone(gateway):
    job_id = finished_job(gateway)
    age(gateway, job_id, 29)
    collected = retention_for(gateway.settings, gateway.store).collect()
    assert collected.jobs == [] and job_of(gateway, job_id).status == JobStatus.SUCCESSFUL
    assert (gateway.settings.jobs_dir / job_id / "outputs").is_dir()

"""Work pulled from an order system (espa-scheduler): ``[sources]`` polled while there is capacity, product types
weighted, the order system's pause flag respected, outcomes posted back; a unit is never run twice nor lost across
a restart, and a source that answers garbage never stops the dispatcher.

The order system is the tests' own server on 127.0.0.1 (``order_api.py``), shaped like ESPA's production API.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from wps_gateway.auth.identity import USER, Identity
from wps_gateway.config import ConfigError, load_settings
from wps_gateway.inputs import check_inputs
from wps_gateway.jobs import ResponseForm
from wps_gateway.sources.poller import SourcePoller, unit_job_id
from wps_gateway.store.models import Job, JobStatus, SourceUnit

from .conftest import REPO, build_gateway, close_gateway, gateway_environ
from .jobs_support import submit_sleepy, wait_for
from .order_api import OrderApi


@pytest.fixture
def order_api():
    api = OrderApi().start()
    yield api
    api.stop()


def source_config(tmp_path: Path, api: OrderApi, **settings: str) -> str:
    """The shipped configuration file plus a source on the tests' order system."""
    values = {"process": "sleepy-squares", "inputs": "numbers=number, seconds=seconds, fail_step=fail",
              "poll_interval": "0.1", "timeout": "5", **settings}
    text = (REPO / "pywps.cfg").read_text() + f"\n[sources]\nespa = {api.url}\n\n[source:espa]\n" + "".join(
        f"{key} = {value}\n" for key, value in values.items())
    path = tmp_path / "gateway.cfg"
    path.write_text(text)
    return str(path)


def source_gateway(tmp_path: Path, sample_data: Path, api: OrderApi, dispatcher: bool = True, **settings: str):
    return build_gateway(tmp_path / "var", sample_data, dispatcher=dispatcher,
                         PYWPS_CFG=source_config(tmp_path, api, **settings))


def units_of(gateway) -> list[SourceUnit]:
    with gateway.store.sessions() as session:
        return list(session.scalars(select(SourceUnit).order_by(SourceUnit.created)))


def jobs_of(gateway) -> list[Job]:
    with gateway.store.sessions() as session:
        return list(session.scalars(select(Job).order_by(Job.created)))


def all_told(api: OrderApi, units: list[tuple[str, str]], last: str) -> bool:
    return all(api.told(*unit)[-1:] == [last] for unit in units)


def test_units_become_jobs_of_real_work_and_their_outcomes_go_back(tmp_path, sample_data, scenes, order_api):
    """espa's shape: units of three product types asked for 3:2:1, each a job (a tile's built-up area), each
    told scheduled, then complete."""
    tiles = [s for s in scenes if "20240610" in s.name]
    kinds = ["landsat", "landsat", "landsat", "modis", "modis", "viirs"]
    for n, kind in enumerate(kinds):
        order_api.add(f"order-{n % 2}", f"scene-{n}", kind, download_url=tiles[n % len(tiles)].as_uri())
    gateway = source_gateway(tmp_path, sample_data, order_api, process="urban-footprint",
                             inputs="tiles=download_url", product_types="landsat:3, modis:2, viirs:1",
                             request_count="1")
    units = [(f"order-{n % 2}", f"scene-{n}") for n in range(len(kinds))]
    try:
        wait_for(lambda: all_told(order_api, units, "complete"), 180, "every unit complete")
        assert [kind for kind, _ in order_api.product_requests[:6]] == kinds, "asked for by weight, in turn"
        assert all(order_api.told(*unit) == ["scheduled", "complete"] for unit in units)
        jobs = jobs_of(gateway)
        assert len(jobs) == 6 and all(j.status == JobStatus.SUCCESSFUL and j.process_id == "urban-footprint"
                                      for j in jobs)
        assert {j.id for j in jobs} == {unit_job_id("espa", f"{o}/{s}") for o, s in units}
        assert {j.user for j in jobs} == {"source:espa"} and {j.protocol for j in jobs} == {"source"}
        assert all(j.outputs["total_area_km2"]["value"] > 0 for j in jobs)
        assert {u.state for u in units_of(gateway)} == {"reported"}
    finally:
        close_gateway(gateway)


def test_failures_and_refusals_are_told_as_errors(tmp_path, sample_data, order_api):
    order_api.add("o1", "fine", "landsat", number=2, seconds=0, fail="none")
    order_api.add("o1", "failing", "landsat", number=3, seconds=0, fail="square")
    order_api.add("o1", "refused", "landsat", number="three", seconds=0, fail="none")
    gateway = source_gateway(tmp_path, sample_data, order_api)
    try:
        units = [("o1", "fine"), ("o1", "failing"), ("o1", "refused")]
        wait_for(lambda: order_api.status_of("o1", "fine") == "complete" and
                 all(order_api.status_of(*u) == "error" for u in units[1:]), 120, "every outcome told")
        assert "the square step was told to fail" in order_api.errors[("o1", "failing")]
        assert order_api.errors[("o1", "refused")].startswith("refused: input 'numbers' must be a integer")
        assert order_api.told("o1", "refused") == ["error"], "never scheduled: it never became a job"
        assert len(jobs_of(gateway)) == 2
    finally:
        close_gateway(gateway)


def test_the_order_systems_switch_stops_pulling_until_it_says_run(tmp_path, sample_data, order_api):
    order_api.run = "False"
    order_api.add("o1", "s1", "landsat", number=2, seconds=0, fail="none")
    gateway = source_gateway(tmp_path, sample_data, order_api)
    try:
        wait_for(lambda: order_api.switch_checks >= 10, 60, "ten looks at the switch")
        assert order_api.product_requests == [] and jobs_of(gateway) == []
        order_api.run = "True"
        wait_for(lambda: order_api.status_of("o1", "s1") == "complete", 60, "the unit run once allowed")
    finally:
        close_gateway(gateway)


def test_units_are_pulled_only_while_there_is_capacity(tmp_path, sample_data, order_api):
    for n in range(5):
        order_api.add("o1", f"s{n}", "landsat", number=n, seconds=0.5, fail="none")
    gateway = source_gateway(tmp_path, sample_data, order_api, max_jobs="2", request_count="50")
    try:
        wait_for(lambda: all(order_api.status_of("o1", f"s{n}") == "complete" for n in range(5)), 120, "all five")
        assert order_api.product_requests and max(limit for _, limit in order_api.product_requests) <= 2
        assert len(jobs_of(gateway)) == 5
    finally:
        close_gateway(gateway)


def test_a_restart_neither_runs_a_unit_twice_nor_loses_one(tmp_path, sample_data, order_api):
    for n in range(4):
        order_api.add("o1", f"s{n}", "landsat", number=n + 1, seconds=1.0, fail="none")
    order_api.add("o1", "late", "landsat", number=9, seconds=0, fail="none")
    gateway = source_gateway(tmp_path, sample_data, order_api, max_jobs="4")
    try:
        wait_for(lambda: len(units_of(gateway)) == 4, 60, "four units taken (the fifth waits for capacity)")
    finally:
        close_gateway(gateway)  # the jobs are under way; the fifth unit is still the order system's
    again = source_gateway(tmp_path, sample_data, order_api, max_jobs="4")
    units = [("o1", f"s{n}") for n in range(4)] + [("o1", "late")]
    try:
        wait_for(lambda: all_told(order_api, units, "complete"), 120, "every unit complete after the restart")
        jobs = jobs_of(again)
        assert len(jobs) == 5 and all(j.status == JobStatus.SUCCESSFUL for j in jobs)
        assert all(order_api.told(*unit).count("complete") == 1 for unit in units)
    finally:
        close_gateway(again)


def test_a_unit_submitted_before_a_crash_and_handed_out_again_is_not_run_twice(tmp_path, sample_data, order_api):
    """The crash between submitting a unit's job and recording the unit: its job exists, the order system was
    never told, so it hands the unit out again."""
    order_api.add("o1", "s1", "landsat", number=4, seconds=0, fail="none")
    gateway = source_gateway(tmp_path, sample_data, order_api, dispatcher=False)
    try:
        processor = gateway.context.processors()["sleepy-squares"]
        checked = check_inputs(processor, SourcePoller._inputs(gateway.settings.sources[0], {
            "number": 4, "seconds": 0, "fail": "none"}, processor), gateway.context.address_policy)
        gateway.context.submit(None, processor, checked, ResponseForm(asynchronous=True), "source",
                               identity=Identity(user="source:espa", roles=frozenset({USER}), authenticated=True),
                               job_id=unit_job_id("espa", "o1/s1"))
    finally:
        close_gateway(gateway)
    again = source_gateway(tmp_path, sample_data, order_api)
    try:
        wait_for(lambda: order_api.status_of("o1", "s1") == "complete", 60, "the unit complete")
        assert [j.id for j in jobs_of(again)] == [unit_job_id("espa", "o1/s1")]
    finally:
        close_gateway(again)


@pytest.mark.parametrize(("garbage", "message"), [
    ("html", "answered what is not JSON (text/html)"),
    ("object", "answered an object, not a JSON array of work units"),
    ("numbers", "answered an array with items that are not objects, not a JSON array of work units"),
    ("truncated", "answered what is not JSON (application/json)"),
    ("error", "answered 500"),
])
def test_a_source_that_answers_garbage_is_retried_with_backoff_and_the_dispatcher_goes_on(
        tmp_path, sample_data, order_api, garbage, message, caplog):
    order_api.garbage = garbage
    order_api.add("o1", "s1", "landsat", number=3, seconds=0, fail="none")
    gateway = source_gateway(tmp_path, sample_data, order_api)
    try:
        with caplog.at_level(logging.WARNING, logger="wps_gateway.sources.poller"):
            wait_for(lambda: gateway.runner.sources._progress["espa"].failures >= 3, 60, "three failed polls")
            job = submit_sleepy(gateway, [5], 0)  # the dispatcher is not held up by the source
            wait_for(lambda: any(j.id == job and j.status == JobStatus.SUCCESSFUL for j in jobs_of(gateway)), 60,
                     "a portal's job")
        warnings = [r.getMessage() for r in caplog.records if r.name == "wps_gateway.sources.poller"]
        assert warnings and all("source espa:" in w and "asking again in" in w for w in warnings)
        assert all(message in w for w in warnings), warnings
        order_api.garbage = None
        wait_for(lambda: order_api.status_of("o1", "s1") == "complete", 60, "the unit once the source recovers")
    finally:
        close_gateway(gateway)


@pytest.mark.parametrize(("settings", "message"), [
    ({"process": ""}, "[source:espa] process: the process each unit runs as is required"),
    ({"process": "batch"}, "cannot run task lists"),
    ({"product_types": "landsat:x"}, "'landsat:x' is not TYPE:WEIGHT"),
    ({"poll_interval": "0"}, "poll_interval must be a positive number of seconds"),
    ({"max_jobs": "-1"}, "max_jobs must be a whole number of 1 or more"),
    ({"inputs": "tiles"}, "'tiles' is not NAME=FIELD"),
])
def test_a_bad_source_setting_is_one_clear_error(tmp_path, sample_data, order_api, settings, message):
    environ = gateway_environ(tmp_path / "var", sample_data, "http://localhost/wps",
                              PYWPS_CFG=source_config(tmp_path, order_api, **settings))
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert message in str(caught.value)


def test_source_settings_are_overridden_by_the_environment(tmp_path, sample_data, order_api):
    environ = gateway_environ(tmp_path / "var", sample_data, "http://localhost/wps",
                              PYWPS_CFG=source_config(tmp_path, order_api), SOURCE_ESPA_MAX_JOBS="7",
                              SOURCE_ESPA_PRODUCT_TYPES="landsat:2,modis:1")
    [source] = load_settings(environ=environ).sources
    assert source.max_jobs == 7 and source.rotation() == ["landsat", "landsat", "modis"]
    assert source.url == order_api.url and source.process == "sleepy-squares"

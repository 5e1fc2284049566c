"""Status reads served from kept job views (``job_views.StatusViews``): never older than the last commit, by
this process or another; a poll of an unchanged job reads no row; the documents are the ones rendered from
the store (who may see a kept view: ``test_conditional_get``)."""

from __future__ import annotations

import http.client
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from lxml import etree
from sqlalchemy import update

from wps_gateway.job_views import StatusViews
from wps_gateway.serving import create_server
from wps_gateway.store.db import Store
from wps_gateway.store.models import Job
from wps_gateway.wps2 import render as wps2_render

from .conftest import build_gateway, close_gateway
from .test_conditional_get import STATUS_READS, revalidated, statements, submit

RUNNING = "UPDATE jobs SET status = 'running', started = created, progress = 40, message = 'half way' WHERE id = ?"
SHOWN = {"wps1": ("ProcessStarted", 'percentCompleted="40"'), "wps2": ("Running", ">40<"),
         "ogcapi": ('"running"', '"progress": 40')}


@pytest.fixture
def front_end(tmp_path, sample_data):
    """A gateway without a dispatcher: jobs change only when a test commits a change."""
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    yield gateway
    close_gateway(gateway)


def commit_in_another_process(database: str, job_id: str) -> None:
    """What a dispatcher of its own does to a job: an UPDATE committed by another process (sqlite3 alone)."""
    code = ("import sqlite3, sys\n"
            "with sqlite3.connect(sys.argv[1]) as db:\n"
            f"    db.execute({RUNNING!r}, (sys.argv[2],))\n")
    subprocess.run([sys.executable, "-c", code, database, job_id], check=True, timeout=60)


def commit_on_another_connection(database: str, job_id: str) -> None:
    with sqlite3.connect(database) as db:
        db.execute(RUNNING, (job_id,))
    db.close()


@pytest.mark.parametrize("commit", [commit_in_another_process, commit_on_another_connection])
@pytest.mark.parametrize("protocol", STATUS_READS)
def test_a_change_committed_elsewhere_is_answered_by_the_next_read(front_end, protocol, commit):
    client, store = front_end.client, front_end.store
    job_id = submit(client)
    path = STATUS_READS[protocol](job_id)
    first = client.get(path)
    etag = first.headers["ETag"]
    seen = statements(store)
    assert revalidated(client, path, etag, status=304) and client.get(path).headers["ETag"] == etag
    assert seen == [], "a poll of an unchanged job read the store"

    commit(store.engine.url.database, job_id)
    changed = revalidated(client, path, etag)  # at once: no wait, no retry
    assert changed.status_int == 200 and changed.headers["ETag"] != etag
    assert all(text in changed.text for text in SHOWN[protocol]), changed.text
    assert revalidated(client, path, changed.headers["ETag"], status=304)
    fresh = client.get(path)
    assert fresh.headers["ETag"] == changed.headers["ETag"]
    if protocol != "wps2":  # StatusInfo's NextPoll moves with the clock
        assert fresh.body == changed.body


def test_kept_views_are_the_rendered_documents_of_the_store(front_end):
    """The same bytes whether the view was kept or read anew (StatusViews emptied each time)."""
    client = front_end.client
    job_id = submit(client)
    for protocol in ("wps1", "ogcapi"):
        path = STATUS_READS[protocol](job_id)
        kept = [client.get(path).body for _ in range(2)]
        front_end.context.status_views = StatusViews(front_end.store)
        assert kept == [client.get(path).body] * 2, protocol
    html = client.get(f"/jobs/{job_id}", headers={"Accept": "text/html"})
    assert html.content_type == "text/html" and job_id in html.text
    assert client.get(f"/jobs/{job_id}").content_type == "application/json"  # JSON and HTML kept apart


def test_a_job_removed_by_another_process_is_no_longer_found(front_end):
    client, store = front_end.client, front_end.store
    job_id = submit(client)
    for read in STATUS_READS.values():
        client.get(read(job_id))
    code = ("import sqlite3, sys\nwith sqlite3.connect(sys.argv[1]) as db:\n"
            "    db.execute('PRAGMA foreign_keys=ON'); db.execute('DELETE FROM jobs WHERE id = ?', (sys.argv[2],))\n")
    subprocess.run([sys.executable, "-c", code, store.engine.url.database, job_id], check=True, timeout=60)
    assert client.get(STATUS_READS["wps1"](job_id), expect_errors=True).status_int == 404
    assert client.get(STATUS_READS["ogcapi"](job_id), expect_errors=True).status_int == 404
    assert b"NoSuchJob" in client.get(STATUS_READS["wps2"](job_id), expect_errors=True).body


def test_the_data_version_moves_with_every_commit_and_only_then(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.upgrade()
    try:
        before = store.data_version()
        assert before is not None and store.data_version() == before
        with store.engine.connect() as connection:  # a read commits nothing
            connection.exec_driver_sql("SELECT count(*) FROM jobs").all()
        assert store.data_version() == before
        with store.session() as session:
            session.execute(update(Job).values(progress=1))  # no row: nothing written, nothing to see
        assert store.data_version() == before
        with store.session() as session:
            session.add(Job(id="j1", process_id="echo", process_version="1", status="accepted"))
        assert store.data_version() != before
        now = store.data_version()
        store.dispose()  # its connection closed: the next one counts from its own start, apart from this one's
        assert store.data_version() != now
    finally:
        store.dispose()
    memory = Store("sqlite://")
    assert memory.data_version() is None  # another connection would be another database: always read
    memory.dispose()


def test_on_postgresql_every_read_goes_to_the_store(postgres_url):
    store = Store(postgres_url)
    store.upgrade()
    try:
        assert store.data_version() is None
        with store.session() as session:
            session.add(Job(id="j1", process_id="echo", process_version="1", status="accepted"))
        views = StatusViews(store)
        assert views.read("j1").status == "accepted"
        with store.session() as session:
            session.execute(update(Job).where(Job.id == "j1").values(status="running", progress=5))
        assert views.read("j1").status == "running"
    finally:
        store.dispose()


def test_status_info_kept_in_parts_is_the_document_lxml_writes():
    now = datetime(2026, 11, 30, 21, 0, 0, 123456, tzinfo=UTC)
    wps = "{http://www.opengis.net/wps/2.0}"
    for status, progress, started in (("accepted", 0, None), ("running", 40, now - timedelta(seconds=30)),
                                      ("successful", 100, now), ("failed", 50, now)):
        job = SimpleNamespace(id="a<b&c", status=status, progress=progress, started=started,
                              cancel_requested=False)
        body = wps2_render.status_info(job, now, parts=wps2_render.status_parts(job))
        root = etree.fromstring(body)
        names = [etree.QName(child).localname for child in root]
        expected = wps2_render.WPS.StatusInfo(*(wps2_render.WPS(name, child.text) for name, child in
                                                zip(names, root, strict=True)))
        assert body == wps2_render._document(expected), status
        assert root.findtext(f"{wps}JobID") == "a<b&c"
        assert ("NextPoll" in names) == (status in ("accepted", "running"))
        assert ("EstimatedCompletion" in names) == (status == "running")


def test_the_server_keeps_a_pollers_connection_after_a_304():
    """``wps-gateway serve``'s waitress: a 304 (no body, no Content-Length) does not close the connection."""
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/unchanged":
            start_response("304 Not Modified", [("ETag", 'W/"1"')])
            return []
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
    try:
        connection.request("GET", "/unchanged")
        answer = connection.getresponse()
        assert answer.status == 304 and answer.read() == b"" and not answer.will_close
        sock = connection.sock
        connection.request("GET", "/")
        answer = connection.getresponse()
        assert answer.read() == b"ok" and connection.sock is sock, "a new connection after the 304"
        connection.request("GET", "/unchanged", headers={"Connection": "close"})
        assert connection.getresponse().will_close  # a client that asks to close still gets it closed
    finally:
        connection.close()
        server.close()

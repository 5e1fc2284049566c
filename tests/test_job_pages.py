"""Job lists by key: /jobs next and prev links over every page (with filters, per identity), offsets,
``wps-gateway jobs list``, and the index ranges the pages read (EXPLAIN on SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, select, text, update

from wps_gateway.auth.identity import Identity
from wps_gateway.auth.visibility import visible_clause
from wps_gateway.cli import main as cli
from wps_gateway.jobs import JobFilter, PageKey, list_jobs
from wps_gateway.store.db import Store
from wps_gateway.store.models import Job

from .conftest import PROXY, as_user, build_gateway, close_gateway, gateway_environ
from .ogcapi_support import path_of, problem, validate_official


@pytest.fixture
def proxied(tmp_path, sample_data) -> Iterator:
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False, AUTH_MODE="header",
                            AUTH_TRUSTED_PROXIES="127.0.0.0/8", AUTH_OPERATORS="group:ops")
    yield gateway
    close_gateway(gateway)


def submit(gateway, user: str, groups: str) -> str:
    response = gateway.client.post_json("/processes/sleepy-squares/execution", {"inputs": {"numbers": [2]}},
                                        headers={**as_user(user, groups)["headers"], "Prefer": "respond-async"},
                                        extra_environ=PROXY, status=201)
    return response.json["jobID"]


def newest_first(gateway, *users: str, status: str | None = None) -> list[str]:
    """The order a listing must give: creation time, then id, both descending (read from the store)."""
    query = select(Job.id).where(Job.user.in_(users)).order_by(Job.created.desc(), Job.id.desc())
    if status:
        query = query.where(Job.status == status)
    with gateway.store.session() as session:
        return list(session.scalars(query))


def link(page: dict, rel: str) -> str | None:
    found = [entry["href"] for entry in page["links"] if entry["rel"] == rel]
    assert len(found) <= 1, page["links"]
    return path_of(found[0]) if found else None


def walk(client, start: str, rel: str, who: dict) -> list[list[str]]:
    """Follow ``rel`` links from ``start``; the job ids of each page seen. Every page is a valid jobList
    and its self link gives that page again."""
    pages, path = [], start
    while path is not None:
        page = validate_official("jobList", client.get(path, **who).json)
        ids = [job["jobID"] for job in page["jobs"]]
        assert [job["jobID"] for job in client.get(link(page, "self"), **who).json["jobs"]] == ids
        pages.append(ids)
        path = link(page, rel)
        assert len(pages) < 50, "the links go round in circles"
    return pages


def test_next_and_prev_links_walk_every_page_both_ways_for_each_identity(proxied):
    client = proxied.client
    alice = [submit(proxied, "alice", "urban") for _ in range(9)]
    bob = [submit(proxied, "bob", "forest") for _ in range(4)]
    tied = datetime(2026, 1, 1, tzinfo=UTC)
    with proxied.store.session() as session:  # same creation time: the order falls back on the id
        session.execute(update(Job).where(Job.id.in_(alice[2:6])).values(created=tied))

    expected = newest_first(proxied, "alice")
    forward = walk(client, "/jobs?limit=2", "next", as_user("alice", "urban"))
    assert [len(page) for page in forward] == [2, 2, 2, 2, 1]
    assert [job for page in forward for job in page] == expected
    first = client.get("/jobs?limit=2", **as_user("alice", "urban")).json
    assert link(first, "prev") is None

    last = client.get("/jobs?limit=2", **as_user("alice", "urban")).json
    while link(last, "next"):
        last = client.get(link(last, "next"), **as_user("alice", "urban")).json
    backward = walk(client, link(last, "self"), "prev", as_user("alice", "urban"))
    assert backward == forward[::-1]

    assert [job for page in walk(client, "/jobs?limit=3", "next", as_user("bob", "forest")) for job in page] \
        == newest_first(proxied, "bob")
    everything = walk(client, "/jobs?limit=5", "next", as_user("olga", "ops"))
    assert [job for page in everything for job in page] == newest_first(proxied, "alice", "bob")
    assert set(alice) | set(bob) == {job for page in everything for job in page}

    # a cursor is a place in the order, not a key to someone's jobs: bob following alice's link sees his own
    alices_second = link(first, "next")
    assert {j["jobID"] for j in client.get(alices_second, **as_user("bob", "forest")).json["jobs"]} <= set(bob)


def test_links_keep_the_filters_and_offsets_still_page(proxied):
    client, alice = proxied.client, as_user("alice", "urban")
    ids = [submit(proxied, "alice", "urban") for _ in range(8)]
    for job_id in ids[1:6]:
        client.delete(f"/jobs/{job_id}", **alice)  # an accepted job is dismissed at once
    dismissed = newest_first(proxied, "alice", status="dismissed")
    assert len(dismissed) == 5

    pages = walk(client, "/jobs?status=dismissed&limit=2", "next", alice)
    assert [job for page in pages for job in page] == dismissed
    page = client.get("/jobs?status=dismissed&limit=2", **alice).json
    following = link(page, "next")
    assert "status=dismissed" in following and "limit=2" in following and "offset" not in following
    assert walk(client, following, "prev", alice) == pages[1::-1]

    everything = newest_first(proxied, "alice")
    by_offset = client.get("/jobs?limit=3&offset=3", **alice).json
    assert [j["jobID"] for j in by_offset["jobs"]] == everything[3:6]
    assert link(by_offset, "prev") == "/jobs?limit=3"
    assert [j["jobID"] for j in client.get(link(by_offset, "next"), **alice).json["jobs"]] == everything[6:]
    assert link(client.get("/jobs?limit=3&offset=1", **alice).json, "prev") == "/jobs?limit=3"

    assert client.get("/jobs?type=openeo&limit=2", **alice).json["jobs"] == []
    for bad in ("cursor=nonsense", "cursor=bmV4dHx5ZXN0ZXJkYXl8eA", f"cursor={following.split('cursor=')[1]}&offset=2"):
        problem(client.get(f"/jobs?{bad}", status=400, **alice), 400, "invalid-parameter")


def test_jobs_list_on_the_command_line_shows_the_newest(tmp_path, sample_data, monkeypatch, capsys):
    for key, value in gateway_environ(tmp_path / "var", sample_data, "http://localhost/wps").items():
        monkeypatch.setenv(key, value)
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    try:
        ids = [submit(gateway, "anonymous", "") for _ in range(4)]
        gateway.client.delete(f"/jobs/{ids[0]}")
    finally:
        close_gateway(gateway)
    capsys.readouterr()
    assert cli(["jobs", "list", "--limit", "2"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ids[:1:-1]
    assert cli(["jobs", "list", "--status", "dismissed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [[ids[0], "dismissed"]]


# -- the indexes a page reads --------------------------------------------------------------------------------


def fill(store: Store, count: int) -> list[dict]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"id": str(uuid.uuid4()), "process_id": "sleepy-squares", "process_version": "1.0.0",
             "status": ("successful", "failed")[n % 97 == 0], "message": "", "progress": 100,
             "user": f"user{n % 500}", "group": f"group{n % 50}", "priority": 0, "protocol": "ogcapi",
             "inputs": {"numbers": [n]},
             "response_form": {}, "descriptor": {"processDescription": {"id": "sleepy-squares"}}, "outputs": {},
             "created": start + timedelta(seconds=n // 2), "updated": start, "cancel_requested": False,
             "client": "", "task_count": 1} for n in range(count)]
    with store.engine.begin() as connection:
        connection.execute(insert(Job.__table__), rows)
        if store.engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE jobs"))
    return rows


def plans(store: Store, **page) -> list[str]:
    """The query plan of the SELECT ``list_jobs`` sends for a page of 51."""
    sent: list[tuple] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        list_jobs(store, 51, **page)
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    statement, parameters = sent[-1]
    with store.engine.connect() as connection:
        if store.engine.dialect.name == "sqlite":
            return [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        return [row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters)]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def big_store(request, tmp_path) -> Iterator[tuple[Store, list[dict]]]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = Store(url)
    store.upgrade()
    yield store, fill(store, 20_000)
    store.dispose()


def test_every_page_is_an_index_range(big_store):
    """A page reads the index of its order (for everybody, one user, one status) from the cursor on: no scan of
    the table, and on SQLite no sort at all. PostgreSQL may sort the few rows of a small bounded range (its
    planner's choice for a user with few jobs); a user with many gets the ordered index scan."""
    store, rows = big_store
    middle = PageKey(rows[10_000]["created"], rows[10_000]["id"])
    user = JobFilter(visible=visible_clause(Identity(user="user3", groups=("group1",), authenticated=True), False))
    cases = {"ix_jobs_created_id": [{}, {"after": middle}, {"before": middle}],
             "ix_jobs_user_created_id": [{"filters": user}, {"filters": user, "after": middle}],
             "ix_jobs_status_created_id": [{"status": "failed"}, {"status": "failed", "after": middle}]}
    sqlite = store.engine.dialect.name == "sqlite"
    for index, pages in cases.items():
        for page in pages:
            plan = "\n".join(plans(store, **page))
            assert index in plan and "Seq Scan" not in plan and "TEMP B-TREE" not in plan, f"{page}:\n{plan}"
            if "after" in page or "before" in page:  # the cursor bounds the index range itself
                assert ("(created,id)" if sqlite else "ROW(created") in plan, f"{page}:\n{plan}"
            if sqlite:
                assert plan.startswith(("SEARCH jobs USING INDEX", "SCAN jobs USING INDEX")), plan
            elif "filters" not in page:
                assert "Sort" not in plan, f"{page}:\n{plan}"
    # with group_visibility: the user's and the groups' index ranges merged (sorted: what they hold), or the
    # ordered index filtered, as the planner prefers; never the table
    group = JobFilter(visible=visible_clause(Identity(user="user3", groups=("group1",), authenticated=True), True))
    plan = "\n".join(plans(store, filters=group, after=middle))
    assert "ix_jobs_" in plan and "Seq Scan" not in plan and "SCAN jobs\n" not in plan + "\n", plan

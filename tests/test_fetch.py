"""The address policy where tasks read their inputs: every redirect hop, the address connected to,
size and time limits, and file references checked again when opened.

Servers here listen on 127.0.0.1 only. Addresses elsewhere appear only in the policy's own checks or
behind an in-memory transport: nothing is ever sent to them.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from processes.common.address_policy import AddressPolicy
from processes.common.errors import InputError, TaskError
from processes.common.fetch import FetchPolicy, download, local_input, open_checked_file
from processes.common.taskenv import load_task
from wps_gateway.address_policy import fetch_policy
from wps_gateway.config import ConfigError, load_settings
from wps_gateway.runner import DispatcherRunner
from wps_gateway.store.models import JobStatus

from .conftest import build_gateway, close_gateway
from .jobs_support import final, job_id_of, job_of, wait_for
from .test_processors import last_line, load, run_task

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers with ``self.server.answer(handler)``; records every request path it got."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802
        self.server.seen.append(self.path)
        self.server.answer(self)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serving(answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Iterator[http.server.HTTPServer]:
    """An HTTP server on 127.0.0.1 that answers every GET with ``answer``; ``.seen`` lists the paths asked."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen, server.answer = [], answer
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def origin(server: http.server.HTTPServer) -> str:
    return f"127.0.0.1:{server.server_address[1]}"


def send(body: bytes, length: int | None = None) -> Callable:
    def answer(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        handler.end_headers()
        try:
            handler.wfile.write(body)
        except OSError:
            pass  # the client hung up (it refused what it saw)
    return answer


def redirect(location: str, status: int = 302) -> Callable:
    def answer(handler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


def endless(handler) -> None:
    """A body without Content-Length that never ends (until the client hangs up)."""
    handler.send_response(200)
    handler.end_headers()
    try:
        while True:
            handler.wfile.write(PAYLOAD)
    except OSError:
        pass


def policy(*hosts: str, **limits) -> FetchPolicy:
    return FetchPolicy(allowed_paths=(), allowed_hosts=hosts, **limits)


# -- every hop of a download passes the policy -------------------------------------------------------

def test_an_allowed_hosts_redirect_to_a_refused_loopback_port_is_not_followed(tmp_path):
    with serving(send(PAYLOAD)) as refused, \
            serving(redirect(f"http://{origin(refused)}/scene.tif")) as allowed:
        url = f"http://{origin(allowed)}/scene.tif"
        with pytest.raises(InputError) as caught:
            download(url, tmp_path, policy(origin(allowed)))
        assert allowed.seen == ["/scene.tif"]  # the first hop was fetched...
        assert refused.seen == []  # ...and its redirect never
        message = str(caught.value)
        assert f"redirected to http://{origin(refused)}/scene.tif" in message and "loopback" in message
        assert list(tmp_path.iterdir()) == []
        # the same redirect with both hosts allowed is followed: what refused it above is the policy
        got = download(url, tmp_path, policy(origin(allowed), origin(refused)))
        assert got.read_bytes() == PAYLOAD and refused.seen == ["/scene.tif"]


@pytest.mark.parametrize("target", ["http://localhost:{port}/x.tif", "http://[::1]:{port}/x.tif",
                                    "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd",
                                    "ftp://127.0.0.1:{port}/x.tif"])
def test_redirects_to_what_the_policy_refuses_are_not_followed(tmp_path, target):
    with serving(redirect(target.format(port=9))) as allowed:
        with pytest.raises(InputError, match="refused"):
            download(f"http://{origin(allowed)}/a.tif", tmp_path, policy(origin(allowed)))
        assert allowed.seen == ["/a.tif"]


def test_redirects_are_followed_a_bounded_number_of_times(tmp_path):
    with serving(send(PAYLOAD)) as end:
        with serving(redirect(f"http://{origin(end)}/end.tif", 301)) as second, \
                serving(redirect(f"http://{origin(second)}/second.tif", 307)) as first:
            hosts = (origin(first), origin(second), origin(end))
            url = f"http://{origin(first)}/first.tif"
            assert download(url, tmp_path, policy(*hosts, max_redirects=2)).read_bytes() == PAYLOAD
            with pytest.raises(InputError, match="more than 1 redirects"):
                download(url, tmp_path / "again", policy(*hosts, max_redirects=1))
    with serving(redirect("/loop.tif")) as loop:  # a relative Location, to itself
        with pytest.raises(InputError, match="more than 5 redirects"):
            download(f"http://{origin(loop)}/loop.tif", tmp_path, policy(origin(loop)))
        assert len(loop.seen) == 6


# -- size and time limits ----------------------------------------------------------------------------

def test_a_declared_size_over_the_limit_is_refused_before_reading(tmp_path):
    with serving(send(PAYLOAD, length=10 * len(PAYLOAD))) as server:
        with pytest.raises(InputError, match=f"{10 * len(PAYLOAD)} bytes, more than the limit of 1000 bytes"):
            download(f"http://{origin(server)}/big.tif", tmp_path, policy(origin(server), max_bytes=1000))
    assert list(tmp_path.iterdir()) == []


def test_a_body_streaming_past_the_limit_is_cut_off_and_nothing_is_kept(tmp_path):
    with serving(endless) as server:
        with pytest.raises(InputError, match="more than the limit of 100000 bytes"):
            download(f"http://{origin(server)}/endless.tif", tmp_path, policy(origin(server), max_bytes=100_000))
    assert list(tmp_path.rglob("*")) == []


def test_a_body_of_exactly_the_limit_is_kept(tmp_path):
    with serving(send(PAYLOAD)) as server:
        got = download(f"http://{origin(server)}/s.tif", tmp_path, policy(origin(server), max_bytes=len(PAYLOAD)))
        assert got.read_bytes() == PAYLOAD


def test_a_server_that_never_answers_times_out(tmp_path):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(InputError, match="the server sent nothing for 0.5 s"):
            download(f"http://127.0.0.1:{port}/s.tif", tmp_path,
                     policy(f"127.0.0.1:{port}", read_timeout=0.5, connect_timeout=5))
    assert list(tmp_path.iterdir()) == []


def test_no_proxy_from_the_environment_is_used(tmp_path, monkeypatch):
    with serving(send(b"from the proxy")) as proxy, serving(send(PAYLOAD)) as server:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://{origin(proxy)}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        got = download(f"http://{origin(server)}/s.tif", tmp_path, policy(origin(server)))
        assert got.read_bytes() == PAYLOAD and proxy.seen == []


# -- the address checked is the address connected to -------------------------------------------------

class Net:
    """DNS answers and an in-memory network: records what was resolved and where requests went."""

    def __init__(self, answers: dict[str, list[list[str]]], pages: dict[str, httpx.Response]) -> None:
        self.answers, self.pages = answers, pages
        self.lookups: list[str] = []
        self.requests: list[httpx.Request] = []

    def resolve(self, host: str) -> list[str]:
        self.lookups.append(host)
        return self.answers[host].pop(0)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.pages[request.headers["host"] + request.url.path]


def test_each_hop_is_resolved_once_and_connected_to_at_the_checked_address(tmp_path):
    net = Net(
        # a second answer would rebind data.example.org to the metadata service; it must never be asked
        answers={"data.example.org": [["93.184.216.34"], ["169.254.169.254"]],
                 "mirror.example.net": [["2606:2800:220:1:248:1893:25c8:1946"]]},
        pages={"data.example.org/s2.tif": httpx.Response(302, headers={"Location": "https://mirror.example.net/s2"}),
               "mirror.example.net/s2": httpx.Response(200, content=PAYLOAD)})
    got = download("http://data.example.org/s2.tif", tmp_path, policy(), resolver=net.resolve,
                   transport=httpx.MockTransport(net.handle))
    assert got.read_bytes() == PAYLOAD
    assert net.lookups == ["data.example.org", "mirror.example.net"]
    first, second = net.requests
    assert (first.url.host, first.headers["host"]) == ("93.184.216.34", "data.example.org")
    assert second.url.scheme == "https" and second.url.host == "2606:2800:220:1:248:1893:25c8:1946"
    assert second.headers["host"] == "mirror.example.net"
    assert second.extensions["sni_hostname"] == "mirror.example.net"  # the certificate is checked for the name


def test_the_next_checked_address_is_tried_when_one_does_not_connect(tmp_path):
    net = Net(answers={"data.example.org": [["2606:2800:220:1::1", "93.184.216.34"]]},
              pages={"data.example.org/s2.tif": httpx.Response(200, content=PAYLOAD)})
    tried = []

    def handle(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        if request.url.host == "2606:2800:220:1::1":  # no IPv6 route from this node
            raise httpx.ConnectError("network is unreachable", request=request)
        return net.handle(request)

    got = download("http://data.example.org/s2.tif", tmp_path, policy(), resolver=net.resolve,
                   transport=httpx.MockTransport(handle))
    assert got.read_bytes() == PAYLOAD
    assert tried == ["2606:2800:220:1::1", "93.184.216.34"] and net.lookups == ["data.example.org"]


def test_a_name_that_resolves_to_a_private_address_is_refused_before_any_connection(tmp_path):
    net = Net(answers={"data.example.org": [["93.184.216.34", "10.0.0.5"]]}, pages={})
    with pytest.raises(InputError, match="10.0.0.5"):
        download("http://data.example.org/s2.tif", tmp_path, policy(), resolver=net.resolve,
                 transport=httpx.MockTransport(net.handle))
    assert net.requests == []


# -- file references, checked again when opened ------------------------------------------------------

@pytest.fixture
def folders(tmp_path, scenes) -> dict[str, Path]:
    """An allowed folder holding a scene, and a scene outside it (readable, so following it would work)."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    shutil.copy(scenes[0], allowed / "scene.tif")
    shutil.copy(scenes[1], outside / "secret.tif")
    return {"allowed": allowed, "outside": outside}


def swap_for_symlink(path: Path, target: Path) -> None:
    path.unlink()
    path.symlink_to(target)


@pytest.mark.parametrize("told_folders", [True, False], ids=["folders-given", "folders-not-given"])
def test_a_file_swapped_for_a_symlink_after_the_check_is_refused(folders, told_folders):
    url = AddressPolicy(allowed_paths=[folders["allowed"]]).check((folders["allowed"] / "scene.tif").as_uri())
    fetch = FetchPolicy(allowed_paths=(str(folders["allowed"]),) if told_folders else None)
    with open_checked_file(url, fetch) as path:  # as submitted: read
        assert path.read_bytes() == (folders["allowed"] / "scene.tif").read_bytes()
    swap_for_symlink(folders["allowed"] / "scene.tif", folders["outside"] / "secret.tif")
    with pytest.raises(InputError, match="refused"):
        with open_checked_file(url, fetch):
            pass


def test_a_symlink_within_the_allowed_folders_is_read_where_it_leads(folders):
    (folders["allowed"] / "alias.tif").symlink_to(folders["allowed"] / "scene.tif")
    fetch = FetchPolicy(allowed_paths=(str(folders["allowed"]),))
    with open_checked_file((folders["allowed"] / "alias.tif").as_uri(), fetch) as path:
        assert path.read_bytes() == (folders["allowed"] / "scene.tif").read_bytes()


def test_a_symlink_appearing_between_the_check_and_the_open_is_not_followed(folders, monkeypatch):
    """The swap lands just after the real path was worked out: the open, which follows no link, refuses."""
    sub = folders["allowed"] / "sub"
    sub.mkdir()
    (sub / "scene.tif").write_bytes(b"checked")
    checked = str(sub / "scene.tif")
    real_realpath = os.path.realpath

    def realpath_then_swap(path, *args, **kwargs):
        result = real_realpath(path, *args, **kwargs)
        if result == checked:  # the attacker wins the race: the folder becomes a link to the outside
            shutil.rmtree(sub)
            sub.symlink_to(folders["outside"])
            shutil.copy(folders["outside"] / "secret.tif", folders["outside"] / "scene.tif")
        return result

    monkeypatch.setattr(os.path, "realpath", realpath_then_swap)
    with pytest.raises(InputError, match="changed while it was opened"):
        with open_checked_file(Path(checked).as_uri(), FetchPolicy(allowed_paths=(str(folders["allowed"]),))):
            pass


def test_the_file_read_is_the_file_checked_even_if_the_name_changes_meanwhile(folders):
    fetch = FetchPolicy(allowed_paths=(str(folders["allowed"]),))
    original = (folders["allowed"] / "scene.tif").read_bytes()
    with open_checked_file((folders["allowed"] / "scene.tif").as_uri(), fetch) as path:
        swap_for_symlink(folders["allowed"] / "scene.tif", folders["outside"] / "secret.tif")
        assert path.read_bytes() == original


def test_a_fifo_in_place_of_the_file_is_refused_without_blocking(folders):
    os.mkfifo(folders["allowed"] / "pipe.tif")
    with pytest.raises(InputError, match="not a regular file"):
        with open_checked_file((folders["allowed"] / "pipe.tif").as_uri(),
                               FetchPolicy(allowed_paths=(str(folders["allowed"]),))):
            pass


@pytest.mark.parametrize("url, why", [
    ("file://elsewhere.example.org/data/scene.tif", "must not name a host"),
    ("file:///etc/passwd", "outside the folders"),
    ("gopher://127.0.0.1/x", "unsupported URL scheme"),
])
def test_other_references_are_refused_when_read(tmp_path, url, why):
    with pytest.raises(InputError, match=why):
        with local_input(url, tmp_path, FetchPolicy(allowed_paths=(str(tmp_path),))):
            pass


# -- the shipped processors, run as tasks with the policy in WPS_TASK --------------------------------

def test_the_ndvi_task_refuses_a_redirect_to_a_refused_port(tmp_path):
    with serving(send(PAYLOAD)) as refused, \
            serving(redirect(f"http://{origin(refused)}/T33UUP_20240601.tif")) as allowed:
        url = f"http://{origin(allowed)}/T33UUP_20240601.tif"
        result = run_task(load("ndvi_mosaic"), "ndvi", tmp_path, {"scenes": [url]}, [url],
                          fetch={"allowed_hosts": [origin(allowed)]})
        assert allowed.seen == ["/T33UUP_20240601.tif"] and refused.seen == []
    assert result.returncode == 1
    assert last_line(result.stderr).startswith(f"{url}: refused (redirected to http://{origin(refused)}/")


def test_the_urban_task_refuses_an_input_swapped_for_a_symlink(tmp_path, folders):
    url = (folders["allowed"] / "scene.tif").as_uri()
    fetch = {"allowed_paths": [str(folders["allowed"])]}
    result = run_task(load("urban_footprint"), "classify", tmp_path / "before", {"tiles": [url]}, [url], fetch=fetch)
    assert result.returncode == 0, result.stderr  # as submitted, the task reads it
    swap_for_symlink(folders["allowed"] / "scene.tif", folders["outside"] / "secret.tif")
    result = run_task(load("urban_footprint"), "classify", tmp_path / "after", {"tiles": [url]}, [url], fetch=fetch)
    assert result.returncode == 1
    assert last_line(result.stderr).startswith(f"{url}: refused: file ") and "outside the folders" in result.stderr
    assert not list((tmp_path / "after" / "steps" / "classify").iterdir())


def test_a_job_whose_input_became_a_symlink_before_it_ran_fails_saying_so(tmp_path, sample_data, scenes):
    """Through the gateway: accepted while the dispatcher is away, swapped, then run."""
    gateway = build_gateway(tmp_path / "var", sample_data, dispatcher=False)
    runner = None
    try:
        uploads = gateway.settings.data_dir / "uploads"
        uploads.mkdir(parents=True)
        shutil.copy(scenes[0], uploads / "scene.tif")
        outside = tmp_path / "outside"
        outside.mkdir()
        shutil.copy(scenes[1], outside / "secret.tif")
        response = gateway.client.get("/wps", {
            "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "ndvi-mosaic",
            "DataInputs": f"scenes=@xlink:href={(uploads / 'scene.tif').as_uri()}",
            "storeExecuteResponse": "true", "status": "true"})
        job_id = job_id_of(response.xml.get("statusLocation"))
        swap_for_symlink(uploads / "scene.tif", outside / "secret.tif")
        runner = DispatcherRunner(gateway.settings, gateway.store)
        runner.start_thread()
        job = final(gateway, job_id, 90)
        assert job.status == JobStatus.FAILED
        assert f"{(uploads / 'scene.tif').as_uri()}: refused" in job.message
    finally:
        if runner is not None:
            runner.stop()
        close_gateway(gateway)


# -- the task contract -------------------------------------------------------------------------------

def test_the_gateway_hands_tasks_its_folders_hosts_and_limits(tmp_path):
    settings = load_settings(environ={
        "GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_ALLOWED_INPUT_PATHS": f"{tmp_path / 'eo'},{tmp_path / 'aux'}",
        "GATEWAY_ALLOWED_INPUT_HOSTS": "Archive.internal:8080", "GATEWAY_INPUT_MAX_SIZE": "512mb",
        "GATEWAY_INPUT_CONNECT_TIMEOUT": "3", "GATEWAY_INPUT_READ_TIMEOUT": "30", "GATEWAY_INPUT_MAX_REDIRECTS": "0"})
    document = fetch_policy(settings).for_job(tmp_path / "jobs" / "j1" / "inputs").to_document()
    assert document == {
        "allowed_paths": [str(tmp_path / "eo"), str(tmp_path / "aux"), str(tmp_path / "jobs" / "j1" / "inputs")],
        "allowed_hosts": ["archive.internal:8080"], "max_bytes": 512 * 1024 * 1024,
        "connect_timeout": 3.0, "read_timeout": 30.0, "max_redirects": 0}
    environ = {"WPS_TASK": json.dumps({"step": "s", "step_dir": "/d", "outputs_dir": "/o", "fetch": document})}
    assert load_task(environ).fetch == FetchPolicy.from_document(document)
    assert FetchPolicy.from_document(document).to_document() == document


def test_the_gateways_defaults_are_the_tasks_defaults(tmp_path):
    told = fetch_policy(load_settings(environ={"GATEWAY_DATA_DIR": str(tmp_path)}))
    untold = FetchPolicy()
    assert (told.max_bytes, told.connect_timeout, told.read_timeout, told.max_redirects) == \
        (untold.max_bytes, untold.connect_timeout, untold.read_timeout, untold.max_redirects)


@pytest.mark.parametrize("fetch, why", [
    ([], "fetch must be an object"),
    ({"allowed_paths": "/data"}, "allowed_paths must be a list"),
    ({"allowed_hosts": [""]}, "allowed_hosts must be a list"),
    ({"max_bytes": 0}, "max_bytes must be a number of at least 1"),
    ({"read_timeout": "soon"}, "read_timeout must be a number"),
    ({"max_redirects": 1.5}, "max_redirects must be a number"),
])
def test_a_bad_fetch_member_is_a_clear_task_error(fetch, why):
    environ = {"WPS_TASK": json.dumps({"step": "s", "step_dir": "/d", "outputs_dir": "/o", "fetch": fetch})}
    with pytest.raises(TaskError, match=why):
        load_task(environ)


@pytest.mark.parametrize("name, value", [("GATEWAY_INPUT_MAX_SIZE", "lots"), ("GATEWAY_INPUT_MAX_SIZE", "0"),
                                         ("GATEWAY_INPUT_READ_TIMEOUT", "0"), ("GATEWAY_INPUT_MAX_REDIRECTS", "-1")])
def test_bad_download_limits_are_refused_at_start(name, value):
    with pytest.raises(ConfigError, match=name.removeprefix("GATEWAY_").lower()):
        load_settings(environ={name: value})


def test_a_jobs_inline_input_is_read_by_its_task(gateway, scenes):
    """Inline data is written into the job's own inputs folder, which the task may read (WPS_TASK.fetch)."""
    body = {"inputs": {"tiles": [{"value": base64.b64encode(scenes[0].read_bytes()).decode(),
                                  "encoding": "base64"}]}}
    response = gateway.client.post("/processes/urban-footprint/execution", json.dumps(body),
                                   content_type="application/json", headers={"Prefer": "respond-async"}, status=201)
    job_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    wait_for(lambda: job_of(gateway, job_id).status in JobStatus.FINAL, 90, "the job to end")
    job = job_of(gateway, job_id)
    assert job.status == JobStatus.SUCCESSFUL, job.message


def test_through_the_gateway_an_allowed_hosts_redirect_to_a_refused_port_fails_the_job(tmp_path, sample_data):
    with serving(send(PAYLOAD)) as refused, \
            serving(redirect(f"http://{origin(refused)}/T33UUP_20240601.tif")) as allowed:
        gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_ALLOWED_INPUT_HOSTS=origin(allowed))
        try:
            url = f"http://{origin(allowed)}/T33UUP_20240601.tif"
            response = gateway.client.get("/wps", {
                "service": "WPS", "request": "Execute", "version": "1.0.0", "identifier": "ndvi-mosaic",
                "DataInputs": f"scenes=@xlink:href={url}", "storeExecuteResponse": "true", "status": "true"})
            job = final(gateway, job_id_of(response.xml.get("statusLocation")), 90)
            assert job.status == JobStatus.FAILED
            assert f"{url}: refused (redirected to http://{origin(refused)}/" in job.message
            assert allowed.seen and refused.seen == []
        finally:
            close_gateway(gateway)

"""Who asks: a trusted proxy's headers, OIDC bearer tokens (a JWKS served on 127.0.0.1 by the tests, keys they
generate), API keys; who sees what on every protocol; roles; quotas."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from wps_gateway.cli import main as cli
from wps_gateway.config import ConfigError, load_settings
from wps_gateway.store.models import Job

from .conftest import PROXY, as_user, build_gateway, close_gateway, gateway_environ, serve_live
from .jobs_support import job_of, wait_for
from .ogcapi_support import problem

ISSUER, AUDIENCE = "https://id.example.org/realms/eo", "wps-gateway"
WPS2 = {"wps": "http://www.opengis.net/wps/2.0", "ows": "http://www.opengis.net/ows/2.0"}


def submit(gateway, numbers=(2,), seconds=0.0, status=201, **kw) -> str:
    kw.setdefault("headers", {})
    kw["headers"] = {**kw["headers"], "Prefer": "respond-async"}
    response = gateway.client.post_json("/processes/sleepy-squares/execution",
                                        {"inputs": {"numbers": list(numbers), "seconds": seconds}}, status=status, **kw)
    return response.json.get("jobID", "")


@pytest.fixture
def proxied(tmp_path, sample_data) -> Iterator:
    gateway = build_gateway(tmp_path / "var", sample_data, AUTH_MODE="header", AUTH_TRUSTED_PROXIES="127.0.0.0/8",
                            AUTH_OPERATORS="group:ops")
    yield gateway
    close_gateway(gateway)


# -- a trusted proxy's headers -----------------------------------------------------------------------------


def test_jobs_record_who_submitted_them_and_for_which_group(proxied):
    job_id = submit(proxied, **as_user("alice", "urban, eo"))
    job = job_of(proxied, job_id)
    assert (job.user, job.group) == ("alice", "urban")
    chosen = submit(proxied, headers={"X-Forwarded-User": "alice", "X-Forwarded-Groups": "urban,eo",
                                      "X-Wps-Group": "eo"}, extra_environ=PROXY)
    assert job_of(proxied, chosen).group == "eo"
    by_parameter = proxied.client.post_json("/processes/sleepy-squares/execution?group=eo",
                                            {"inputs": {"numbers": [1]}}, status=201,
                                            **{**as_user("alice", "urban,eo"),
                                               "headers": {"X-Forwarded-User": "alice",
                                                           "X-Forwarded-Groups": "urban,eo",
                                                           "Prefer": "respond-async"}})
    assert job_of(proxied, by_parameter.json["jobID"]).group == "eo"
    problem(proxied.client.post_json("/processes/sleepy-squares/execution", {"inputs": {"numbers": [1]}},
                                     headers={"X-Forwarded-User": "alice", "X-Wps-Group": "ops"},
                                     extra_environ=PROXY, status=403), 403)


def test_another_users_job_is_not_found_on_every_protocol(proxied):
    job_id = submit(proxied, **as_user("alice", "urban"))
    wait_for(lambda: job_of(proxied, job_id).status == "successful")
    client, bob = proxied.client, as_user("bob", "forest")
    problem(client.get(f"/jobs/{job_id}", status=404, **bob), 404)
    problem(client.get(f"/jobs/{job_id}/results", status=404, **bob), 404)
    problem(client.delete(f"/jobs/{job_id}", status=404, **bob), 404)
    assert client.get("/jobs", **bob).json["jobs"] == []
    for operation in ("GetStatus", "GetResult", "Dismiss"):
        answer = client.get("/wps", {"service": "WPS", "version": "2.0.0", "request": operation, "jobId": job_id},
                            expect_errors=True, **bob)
        assert etree.fromstring(answer.body).find("ows:Exception", WPS2).get("exceptionCode") == "NoSuchJob"
    # alice sees her own; an operator sees (and may dismiss) everything
    assert client.get(f"/jobs/{job_id}", **as_user("alice", "urban")).json["status"] == "successful"
    assert [j["jobID"] for j in client.get("/jobs", **as_user("olga", "ops")).json["jobs"]] == [job_id]
    assert job_of(proxied, job_id).status != "dismissed"


def test_group_visibility_shows_the_groups_jobs(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, AUTH_MODE="header", AUTH_TRUSTED_PROXIES="127.0.0.1",
                            AUTH_GROUP_VISIBILITY="true")
    try:
        job_id = submit(gateway, **as_user("alice", "urban"))
        assert [j["jobID"] for j in gateway.client.get("/jobs", **as_user("carol", "urban")).json["jobs"]] == [job_id]
        problem(gateway.client.get(f"/jobs/{job_id}", status=404, **as_user("bob", "forest")), 404)
        # the usage report covers the jobs each could list
        assert gateway.client.get("/accounting", **as_user("carol", "urban")).json["total"]["jobs"] == 1
        assert gateway.client.get("/accounting", **as_user("bob", "forest")).json["total"]["jobs"] == 0
    finally:
        close_gateway(gateway)


def test_without_credentials_only_the_catalogue_answers(proxied):
    client = proxied.client
    assert client.get("/processes").status_int == 200 and client.get("/").status_int == 200
    assert client.get("/wps", {"service": "WPS", "request": "GetCapabilities"}).status_int == 200
    assert client.get("/wps", {"service": "WPS", "version": "1.0.0", "request": "DescribeProcess",
                               "identifier": "sleepy-squares"}).status_int == 200
    refused = client.get("/jobs", status=401)
    assert refused.headers["WWW-Authenticate"].startswith("Bearer") and problem(refused, 401)
    problem(client.post_json("/processes/sleepy-squares/execution", {"inputs": {"numbers": [1]}}, status=401), 401)
    wps1 = client.get("/wps", {"service": "WPS", "request": "Execute", "version": "1.0.0",
                               "identifier": "sleepy-squares", "DataInputs": "numbers=1"}, status=401)
    assert b"ExceptionReport" in wps1.body and wps1.headers["WWW-Authenticate"]


def test_status_documents_are_fetched_by_their_url_unless_protected(tmp_path, sample_data):
    for protect in ("false", "true"):
        gateway = build_gateway(tmp_path / f"var-{protect}", sample_data, AUTH_MODE="header",
                                AUTH_TRUSTED_PROXIES="127.0.0.1", AUTH_PROTECT_STATUS=protect)
        try:
            job_id = submit(gateway, **as_user("alice"))
            anonymous = gateway.client.get(f"/wps/status/{job_id}.xml", expect_errors=True)
            assert anonymous.status_int == (401 if protect == "true" else 200)
            other = gateway.client.get(f"/wps/status/{job_id}.xml", expect_errors=True, **as_user("bob"))
            assert other.status_int == (404 if protect == "true" else 200)
            assert gateway.client.get(f"/wps/status/{job_id}.xml", **as_user("alice")).status_int == 200
        finally:
            close_gateway(gateway)


def test_the_catalogue_can_be_protected(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, AUTH_MODE="header", AUTH_TRUSTED_PROXIES="127.0.0.1",
                            AUTH_PROTECT_CATALOGUE="true")
    try:
        problem(gateway.client.get("/processes", status=401), 401)
        gateway.client.get("/wps", {"service": "WPS", "request": "GetCapabilities"}, status=401)
        assert gateway.client.get("/processes", **as_user("alice")).status_int == 200
    finally:
        close_gateway(gateway)


def test_identity_headers_from_anywhere_else_are_refused(proxied):
    forged = proxied.client.get("/jobs", headers={"X-Forwarded-User": "olga", "X-Forwarded-Groups": "ops"},
                                extra_environ={"REMOTE_ADDR": "192.0.2.66"}, status=401)
    assert "trusted proxies" in problem(forged, 401)["detail"]


# -- API keys ----------------------------------------------------------------------------------------------


def test_api_keys_are_made_used_and_revoked(tmp_path, sample_data, monkeypatch, capsys):
    for key, value in gateway_environ(tmp_path / "var", sample_data, "http://localhost/wps").items():
        monkeypatch.setenv(key, value)
    gateway = build_gateway(tmp_path / "var", sample_data, AUTH_MODE="header", AUTH_TRUSTED_PROXIES="127.0.0.1")
    try:
        assert cli(["apikeys", "create", "--user", "portal-svc", "--groups", "urban", "--note", "the portal"]) == 0
        key = capsys.readouterr().out.strip().splitlines()[-1]
        job_id = submit(gateway, headers={"Authorization": f"Bearer {key}"})
        assert (job_of(gateway, job_id).user, job_of(gateway, job_id).group) == ("portal-svc", "urban")
        assert gateway.client.get(f"/jobs/{job_id}", headers={"X-API-Key": key}).status_int == 200
        assert cli(["apikeys", "list"]) == 0
        listed = capsys.readouterr().out
        assert "portal-svc" in listed and key.split(".")[1] not in listed  # never shown again
        key_id = key.removeprefix("wpsg_").split(".")[0]
        assert cli(["apikeys", "revoke", key_id]) == 0
        problem(gateway.client.get(f"/jobs/{job_id}", headers={"X-API-Key": key}, status=401), 401)
        problem(gateway.client.get("/jobs", headers={"Authorization": "Bearer wpsg_nothere.x"}, status=401), 401)
    finally:
        close_gateway(gateway)


# -- OIDC ----------------------------------------------------------------------------------------------------


class IdentityProvider:
    """A JWKS endpoint on 127.0.0.1 with keys this test made; ``rotate`` adds a key (a new ``kid``)."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        self.rotate()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.fetches += 1
                body = json.dumps(outer.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/realms/eo/protocol/openid-connect/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rotate(self) -> str:
        kid = f"key-{len(self.keys) + 1}"
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid, key in self.keys.items():
            entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            entries.append({**entry, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": entries}

    def token(self, user: str = "alice", groups: list[str] | None = None, kid: str = "key-1",
              key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "preferred_username": user,
                "groups": groups if groups is not None else ["urban"], **claims}
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.close()


def oidc_settings(idp: IdentityProvider) -> dict[str, str]:
    return {"AUTH_MODE": "oidc", "AUTH_OIDC_ISSUER": ISSUER, "AUTH_OIDC_AUDIENCE": AUDIENCE,
            "AUTH_OIDC_JWKS_URL": idp.url, "AUTH_OIDC_LEEWAY": "30", "AUTH_OIDC_JWKS_COOLDOWN": "0"}


def bearer(token: str) -> dict[str, dict[str, str]]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


def test_oidc_tokens_are_verified(tmp_path, sample_data, idp, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = build_gateway(tmp_path / "var", sample_data, **oidc_settings(idp))
    try:
        client = gateway.client
        good = idp.token(groups=["urban", "eo"])
        job_id = submit(gateway, **bearer(good))
        assert (job_of(gateway, job_id).user, job_of(gateway, job_id).group) == ("alice", "urban")
        now = int(time.time())
        forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        bad = {
            "expired": idp.token(exp=now - 120, iat=now - 600),
            "not yet valid": idp.token(nbf=now + 600),
            "another audience": idp.token(aud="someone-else"),
            "another issuer": idp.token(iss="https://evil.example.org"),
            "bad signature": idp.token(key=forged_key),
            "unknown key": idp.token(kid="key-99", key=forged_key),
            "not a JWT": "not.a.jwt",
        }
        for why, token in bad.items():
            refused = client.get("/jobs", status=401, **bearer(token))
            challenge = refused.headers["WWW-Authenticate"]
            assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge, why
            assert token not in refused.text
        assert not [r for r in caplog.records if any(t in r.getMessage() for t in [good, *bad.values()])]
        assert client.get("/jobs", status=200, **bearer(idp.token(exp=now - 10, iat=now - 600)))  # within leeway
    finally:
        close_gateway(gateway)


def test_a_new_signing_key_is_fetched_when_a_token_names_it(tmp_path, sample_data, idp):
    gateway = build_gateway(tmp_path / "var", sample_data, **oidc_settings(idp))
    try:
        assert gateway.client.get("/jobs", **bearer(idp.token())).status_int == 200
        fetched = idp.fetches
        assert gateway.client.get("/jobs", **bearer(idp.token())).status_int == 200
        assert idp.fetches == fetched  # cached
        kid = idp.rotate()  # the provider rolls its keys over
        assert gateway.client.get("/jobs", **bearer(idp.token(kid=kid))).status_int == 200
        assert idp.fetches == fetched + 1
    finally:
        close_gateway(gateway)


def test_owslib_clients_work_unmodified_with_a_bearer_token(tmp_path, sample_data, idp, monkeypatch):
    import owslib.ogcapi
    from owslib.ogcapi.processes import Processes
    from owslib.wps import WebProcessingService, monitorExecution

    # OWSLib's OGC API client merges the headers it is given (here with the WPS client's Content-Type:
    # text/xml) into a module-level dict: keep that from leaking into later tests.
    monkeypatch.setattr(owslib.ogcapi, "REQUEST_HEADERS", dict(owslib.ogcapi.REQUEST_HEADERS))

    live = serve_live(tmp_path / "var", sample_data, **oidc_settings(idp))
    server = next(live)
    try:
        headers = {"Authorization": f"Bearer {idp.token(user='portal')}"}
        wps = WebProcessingService(server.url, version="1.0.0", headers=dict(headers))
        assert "sleepy-squares" in [p.identifier for p in wps.processes]
        execution = wps.execute("sleepy-squares", [("numbers", "3"), ("numbers", "4")])
        monitorExecution(execution, sleepSecs=0.2)
        assert execution.isSucceded() and execution.processOutputs[0].data == ["25"]
        api = Processes(server.url.removesuffix("/wps"), headers=dict(headers))
        assert "sleepy-squares" in [p["id"] for p in api.processes()]
        with server.gateway.store.sessions() as s:
            assert {j.user for j in s.query(Job)} == {"portal"}
    finally:
        next(live, None)


def test_bad_auth_settings_are_one_clear_error(tmp_path, sample_data):
    for bad in ({"AUTH_MODE": "kerberos"}, {"AUTH_MODE": "header"}, {"AUTH_MODE": "oidc"},
                {"AUTH_MODE": "oidc", "AUTH_OIDC_ISSUER": ISSUER, "AUTH_OIDC_AUDIENCE": AUDIENCE,
                 "AUTH_OIDC_JWKS_URL": "http://127.0.0.1:9/jwks", "AUTH_OIDC_ALGORITHMS": "HS256"},
                {"AUTH_OPERATORS": "alice"}, {"AUTH_TRUSTED_PROXIES": "not-a-net"}):
        with pytest.raises(ConfigError, match=r"\[auth\]"):
            load_settings(environ=gateway_environ(tmp_path, sample_data, "http://x/wps", **bad))


# -- quotas ------------------------------------------------------------------------------------------------


def test_quotas_refuse_a_job_before_it_is_queued(proxied, tmp_path, sample_data, monkeypatch, capsys):
    for key, value in gateway_environ(tmp_path / "var", sample_data, "http://localhost/wps").items():
        monkeypatch.setenv(key, value)
    assert cli(["quota", "set", "--user", "alice", "--max-running", "1"]) == 0
    submit(proxied, seconds=30, **as_user("alice", "urban"))
    busy = problem(submit_raw(proxied, as_user("alice", "urban"), 429), 429)
    assert "quota" in busy["detail"] and "1" in busy["detail"]
    submit(proxied, **as_user("bob", "urban"))  # others are not held back
    assert cli(["quota", "set", "--group", "urban", "--cpu-hours", "0"]) == 0
    spent = problem(submit_raw(proxied, as_user("bob", "urban"), 403), 403)
    assert "cpu-hours" in spent["detail"]
    # operators manage quotas over REST too; others may not
    problem(proxied.client.get("/admin/api/quotas", status=403, **as_user("bob")), 403)
    listed = proxied.client.get("/admin/api/quotas", **as_user("olga", "ops")).json["quotas"]
    assert {(q["scope"], q["name"]) for q in listed} == {("user", "alice"), ("group", "urban")}
    proxied.client.delete("/admin/api/quotas/group/urban", status=204, **as_user("olga", "ops"))
    changed = proxied.client.put_json("/admin/api/quotas/user/alice", {"maxRunning": 5, "cpuHours": 10},
                                      **as_user("olga", "ops")).json
    assert changed["maxRunning"] == 5 and changed["running"] == 1
    submit(proxied, **as_user("alice", "urban"))
    problem(proxied.client.put_json("/admin/api/quotas/user/alice", {"period": "fortnight"}, status=400,
                                    **as_user("olga", "ops")), 400)
    capsys.readouterr()


def submit_raw(gateway, who: dict[str, Any], status: int):
    return gateway.client.post_json("/processes/sleepy-squares/execution", {"inputs": {"numbers": [1]}},
                                    status=status, headers={**who["headers"], "Prefer": "respond-async"},
                                    extra_environ=who["extra_environ"])


@pytest.mark.postgres
def test_listings_and_quotas_per_user_on_postgresql(tmp_path, sample_data, postgres_url):
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_DATABASE_URL=postgres_url, AUTH_MODE="header",
                            AUTH_TRUSTED_PROXIES="127.0.0.1", AUTH_GROUP_VISIBILITY="true")
    try:
        mine = submit(gateway, **as_user("alice", "urban"))
        theirs = submit(gateway, **as_user("bob", "forest"))
        listed = gateway.client.get("/jobs", **as_user("carol", "urban")).json["jobs"]
        assert [j["jobID"] for j in listed] == [mine] and theirs
        wait_for(lambda: job_of(gateway, mine).status == "successful")
        from wps_gateway import quotas
        quotas.set_quota(gateway.store, "group", "urban", cpu_hours=1.0)
        (state,) = quotas.list_quotas(gateway.store)
        assert 0 < state.used_cpu_hours < 1 and state.running == 0  # alice's finished job counts for urban
    finally:
        close_gateway(gateway)

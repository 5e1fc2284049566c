"""Nobody gets more than they were given: a task sees none of the gateway's secrets, and no URL with
credentials reaches a log or a response unmasked."""

from __future__ import annotations

import json
import logging
import urllib.request

import pytest

from wps_gateway.redaction import RedactingFilter, redact

from .conftest import build_gateway, close_gateway
from .gateway_process import GatewayProcess
from .jobs_support import job_id_of, job_of, wait_for
from .ogcapi_support import poll_job
from .test_callbacks import Receiver
from .test_deploy import TOKEN, deploy, package

SECRETS = {"MESOS_SECRET": "m3sos-s3cret", "GATEWAY_DATABASE_URL_PASSWORD": "db-pa55",
           "AWS_SECRET_ACCESS_KEY": "aws-s3cret"}


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql://wps:s3cret@db.example.org/wps", "postgresql://wps:***@db.example.org/wps"),
    ("zk://mesos:pw@zk1:2181/mesos", "zk://mesos:***@zk1:2181/mesos"),
    ("https://portal.example.org/cb?token=abc&job=1", "https://portal.example.org/cb?token=***&job=1"),
    ("https://b.s3.example.org/o.tif?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff",
     "https://b.s3.example.org/o.tif?X-Amz-Credential=***&X-Amz-Signature=***"),
    ("download of http://u:p@h/x.tif?api_key=K failed", "download of http://u:***@h/x.tif?api_key=*** failed"),
    ("http://127.0.0.1:5000/jobs?limit=5&offset=0", "http://127.0.0.1:5000/jobs?limit=5&offset=0"),
    ("https://user@host/path", "https://user@host/path"),
])
def test_one_redaction_masks_credentials_in_urls(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_the_log_filter_redacts_messages_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("POST",
                               "http://u:pw@h/cb?token=t0k"), None)
    try:
        raise RuntimeError("cannot reach postgresql://wps:hunter2@db/wps")
    except RuntimeError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "pw@" not in text and "t0k" not in text and "hunter2" not in text
    assert "http://u:***@h/cb?token=***" in text


def test_a_deployed_processor_cannot_read_the_gateways_secrets(tmp_path, sample_data, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_DEPLOY_TOKENS=f"portal:{TOKEN}")
    try:
        snoop = package("env-snoop")
        # The attack of the issue: dump the environment into an output anyone may download.
        snoop["executionUnit"]["command"][-1] = (
            "import json, os, pathlib, sys; t = json.loads(os.environ['WPS_TASK'])\n"
            "if sys.argv[1] == 'total':\n"
            "    (pathlib.Path(t['outputs_dir']) / 'total.txt').write_text('0')\n"
            "    (pathlib.Path(t['outputs_dir']) / 'env.json').write_text(json.dumps(dict(os.environ)))\n")
        assert deploy(gateway, snoop).status_code == 201
        response = gateway.client.post_json("/processes/env-snoop/execution", {"inputs": {"numbers": [1]}},
                                            headers={"Prefer": "respond-async"})
        status, _ = poll_job(gateway.client, response.json["jobID"])
        assert status["status"] == "successful", status
        dumped = json.loads((gateway.settings.jobs_dir / response.json["jobID"] / "outputs" / "env.json").read_text())
        text = json.dumps(dumped)
        assert not [value for value in [*SECRETS.values(), TOKEN] if value in text], dumped
        assert "GATEWAY_DEPLOY_TOKENS" not in dumped and "WPS_TASK" in dumped
    finally:
        close_gateway(gateway)


def test_credentials_in_urls_reach_neither_the_log_nor_a_document(tmp_path, sample_data):
    receiver = Receiver()
    gateway = GatewayProcess(tmp_path / "var", sample_data, GATEWAY_ALLOWED_CALLBACK_HOSTS=receiver.host).start()
    try:
        callback = f"http://portal:cb-pa55@{receiver.host}/done?token=cb-t0ken"
        body = json.dumps({"inputs": {"numbers": [2], "seconds": 0}, "subscriber": {"successUri": callback}})
        request = urllib.request.Request(f"http://127.0.0.1:{gateway.port}/processes/sleepy-squares/execution",
                                         body.encode(), {"Content-Type": "application/json",
                                                         "Prefer": "respond-async"})
        urllib.request.urlopen(request, timeout=10).close()
        path, _ = receiver.received(1)[0]
        assert path == "/done?token=cb-t0ken"  # the callback itself carried them
        gateway.wait_until(lambda: gateway.logged("callback success"), 30, "the callback logged")
        log = gateway.tail(10**6)
        assert "cb-pa55" not in log and "cb-t0ken" not in log, log[-3000:]
        assert "portal:***@" in log
    finally:
        gateway.stop()
        receiver.close()


def test_input_references_are_masked_in_lineage_and_task_messages(tmp_path, sample_data):
    gateway = build_gateway(tmp_path / "var", sample_data, GATEWAY_ALLOWED_INPUT_HOSTS="127.0.0.1:9")
    try:
        reference = "http://reader:in-pa55@127.0.0.1:9/scene.tif?sig=in-s1g"  # nothing listens on port 9
        body = f"""<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
            xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
          <ows:Identifier>urban-footprint</ows:Identifier>
          <wps:DataInputs><wps:Input><ows:Identifier>tiles</ows:Identifier>
            <wps:Reference xlink:href="{reference.replace("&", "&amp;")}"/></wps:Input></wps:DataInputs>
          <wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" status="true" lineage="true"/>
          </wps:ResponseForm></wps:Execute>"""
        response = gateway.client.post("/wps", body, content_type="text/xml")
        assert b"in-pa55" not in response.body and b"in-s1g" not in response.body
        assert b"reader:***@127.0.0.1:9/scene.tif?sig=***" in response.body
        job_id = job_id_of(response.xml.get("statusLocation"))
        wait_for(lambda: job_of(gateway, job_id).status == "failed", timeout=60)
        final = gateway.client.get(f"/wps/status/{job_id}.xml").body
        assert b"in-pa55" not in final and b"in-s1g" not in final
        assert "127.0.0.1:9" in job_of(gateway, job_id).message  # the reason is still there, masked
    finally:
        close_gateway(gateway)

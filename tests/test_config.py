"""Configuration: pywps.cfg defaults, environment overrides, masked secrets, clear errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from wps_gateway.config import ConfigError, load_settings, read_config, redacted

from .conftest import REPO
from .gateway_process import GatewayProcess


def test_defaults_come_from_pywps_cfg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.backend == "local"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'gateway.db'}"
    assert settings.url == "http://127.0.0.1:5000/wps"


def test_every_section_is_overridden_by_its_environment_variable():
    environ = {"GATEWAY_SYNC_TIMEOUT": "5", "SERVER_URL": "https://wps.example.org/wps",
               "METADATA_MAIN_PROVIDER_NAME": "ACME EO", "LOCAL_CPUS": "3"}
    settings = load_settings(environ=environ)
    assert settings.sync_timeout == 5.0
    assert settings.url == "https://wps.example.org/wps"
    assert settings.local_cpus == 3.0
    assert read_config(None, environ)["metadata:main"]["provider_name"] == "ACME EO"


def test_the_local_backend_has_the_gpus_it_is_given(tmp_path):
    from wps_gateway.runner import backend_for

    assert backend_for(load_settings(environ={})).capacity.gpus == 0
    assert backend_for(load_settings(environ={"LOCAL_GPUS": "2"})).capacity.gpus == 2
    for wrong in ("-1", "two", "1.5"):
        with pytest.raises(ConfigError, match=r"\[local\] gpus must be a whole number"):
            load_settings(environ={"LOCAL_GPUS": wrong})


def test_an_unknown_dispatcher_mode_is_refused_not_taken_for_external():
    assert load_settings(environ={"GATEWAY_DISPATCHER": "External"}).dispatcher == "external"
    with pytest.raises(ConfigError, match=r"\[gateway\] dispatcher must be embedded or external, not 'embeded'"):
        load_settings(environ={"GATEWAY_DISPATCHER": "embeded"})


def test_a_config_file_of_ones_own_needs_name_only_what_it_changes(tmp_path):
    own = tmp_path / "gateway.cfg"
    own.write_text(f"[server]\nurl = https://wps.example.org/wps\n[gateway]\ndata_dir = {tmp_path / 'var'}\n")
    settings = load_settings([str(own)], environ={"LOGGING_DATABASE": f"sqlite:///{tmp_path / 'requests.db'}"})
    assert settings.url == "https://wps.example.org/wps"
    assert settings.request_log == f"sqlite:///{tmp_path / 'requests.db'}"  # its variable works unnamed too
    assert load_settings([str(own)], environ={}).request_log == ""  # PyWPS's request log off


def test_passwords_are_masked():
    parser = read_config(None, {"GATEWAY_DATABASE_URL": "postgresql://wps:s3cret@db/wps"})
    shown = redacted(parser)
    assert shown["gateway"]["database_url"] == "postgresql://wps:***@db/wps"
    assert "s3cret" not in repr(shown)


def test_a_bad_value_names_the_problem():
    with pytest.raises(ConfigError, match="invalid setting"):
        load_settings(environ={"GATEWAY_SYNC_TIMEOUT": "soon"})


def test_mesos_settings_take_the_names_mesos_schedulers_use():
    environ = {"MESOS_MASTER": "zk://127.0.0.1:2181/mesos", "MAX_CPU": "64", "TASK_IMAGE": "eo/tasks:2",
               "OFFER_REFUSE_SECONDS": "30", "MESOS_SECRET": "hunter2", "MESOS_MAX_CPU": "32"}
    settings = load_settings(environ=environ)
    assert settings.mesos["master"] == "zk://127.0.0.1:2181/mesos"
    assert settings.mesos["task_image"] == "eo/tasks:2"
    assert settings.mesos["offer_refuse_seconds"] == "30"
    assert settings.mesos["max_cpu"] == "32"  # the SECTION_KEY name wins over the alias
    assert "hunter2" not in repr(settings)
    assert redacted(read_config(None, environ))["mesos"]["secret"] == "***"


# -- PyWPS gets its own settings only: never the environment, never the gateway's sections --

SECRETS = {"MESOS_SECRET": "mesos-s3cret", "GATEWAY_DATABASE_URL": "postgresql://wps:db-s3cret@127.0.0.1:9/wps",
           "GATEWAY_DEPLOY_TOKENS": "alice:token-s3cret", "SOME_API_KEY": "api-s3cret"}
# Both spellings of the proxy bypass list, as many hosts set them; PyWPS 4.8 alone fails to import with both.
PROXY_BYPASS = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

DUMP_PYWPS_CONFIG = """
import json, sys
from wps_gateway.config import load_settings
import pywps.configuration as pywps_config
imported = pywps_config.CONFIG  # what PyWPS loaded by itself while being imported
load_settings()
def dump(config):
    return {"defaults": dict(config.defaults()),
            "sections": {s: dict(config.items(s, raw=True)) for s in config.sections()}}
json.dump({"imported": dump(imported), "configured": dump(pywps_config.CONFIG),
           "abstract": pywps_config.get_config_value("metadata:main", "identification_abstract"),
           "maxsingleinputsize": pywps_config.get_config_value("server", "maxsingleinputsize")}, sys.stdout)
"""


def test_pywps_configuration_holds_no_environment_variable(tmp_path):
    env = {**os.environ, **SECRETS, **PROXY_BYPASS, "GATEWAY_DATA_DIR": str(tmp_path / "var"),
           # a literal per cent sign and dollar: PyWPS must neither interpolate nor expand them
           "METADATA_MAIN_IDENTIFICATION_ABSTRACT": "100% open, priced in $SOME_API_KEY"}
    done = subprocess.run([sys.executable, "-c", DUMP_PYWPS_CONFIG], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    text = json.dumps(seen)
    for name, value in {**SECRETS, **PROXY_BYPASS}.items():
        assert value not in text, f"{name} reached PyWPS's configuration"
    # while imported, PyWPS saw no variable but the empty configuration file it was pointed at
    assert seen["imported"]["defaults"] == {"pywps_cfg": os.devnull} and seen["configured"]["defaults"] == {}
    assert set(seen["configured"]["sections"]).isdisjoint({"gateway", "local", "mesos"})
    # PyWPS still has its own settings: ours where we have them, its built-in defaults elsewhere
    assert seen["abstract"] == "100% open, priced in $SOME_API_KEY"
    assert seen["maxsingleinputsize"] == "1mb"
    assert seen["configured"]["sections"]["server"]["url"] == "http://127.0.0.1:5000/wps"


@pytest.mark.slow
def test_the_gateway_starts_with_both_spellings_of_no_proxy(tmp_path, sample_data):
    secrets = {name: value for name, value in SECRETS.items() if name != "GATEWAY_DATABASE_URL"}
    gateway = GatewayProcess(tmp_path / "var", sample_data, **secrets, **PROXY_BYPASS).start()
    try:
        capabilities = gateway.get(f"{gateway.url}?service=WPS&request=GetCapabilities")
        assert b"ndvi-mosaic" in capabilities
        for value in secrets.values():
            assert value.encode() not in capabilities
    finally:
        gateway.stop()


def documented_settings(readme: str) -> set[tuple[str, str]]:
    """(section, key) of every row of the README's configuration table; a row may name several keys of one
    section: `[auth] user_header`, `groups_header`."""
    found = set()
    for first_cell in re.findall(r"^\| (`\[[a-z:_]+\] [^|]*)\|", readme, re.M):
        section = re.match(r"`\[([a-z:_]+)\]", first_cell).group(1)
        found |= {(section, key) for key in re.findall(r"`(?:\[[a-z:_]+\] )?([a-z_]+)`", first_cell)}
    return found


def test_every_setting_is_in_the_readme():
    from wps_gateway.config import DEFAULTS

    documented = documented_settings((REPO / "README.md").read_text())
    assert {(section, key) for section, keys in DEFAULTS.items() for key in keys} - documented == set()

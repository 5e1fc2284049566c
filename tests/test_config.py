"""Configuration: pywps.cfg defaults, environment overrides, masked secrets, clear errors."""

from __future__ import annotations

import pytest

from wps_gateway.config import ConfigError, load_settings, read_config, redacted


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

"""The job store: migrations and the backends' durable state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from wps_gateway.store.backend_state import StoreBackendState
from wps_gateway.store.db import Store
from wps_gateway.store.models import Base

REPO = Path(__file__).resolve().parent.parent


def test_migrations_match_the_models_on_sqlite(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'gateway.db'}")
    store.upgrade()
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_backend_state_survives_a_new_store_and_is_per_backend(tmp_path):
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    first = Store(url)
    first.upgrade()
    StoreBackendState(first, "mesos").put("framework_id", "F-1")
    StoreBackendState(first, "yarn").put("framework_id", "other")
    first.dispose()

    again = StoreBackendState(Store(url), "mesos")
    assert again.get("framework_id") == "F-1"
    again.put("framework_id", "F-2")
    assert again.get("framework_id") == "F-2"
    again.put("framework_id", None)
    assert again.get("framework_id") is None
    assert StoreBackendState(again.store, "yarn").get("framework_id") == "other"


def test_jobs_list_and_show_run_in_a_fresh_interpreter(tmp_path):
    """The CLI imports only what its command needs; ``jobs`` once failed on an import cycle outside the server."""
    env = {"PATH": "/usr/bin:/bin", "PYWPS_CFG": str(REPO / "pywps.cfg"), "GATEWAY_DATA_DIR": str(tmp_path / "var")}
    for argv in (["db", "upgrade"], ["jobs", "list"]):
        result = subprocess.run([sys.executable, "-m", "wps_gateway.cli", *argv], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    result = subprocess.run([sys.executable, "-m", "wps_gateway.cli", "jobs", "show", "no-such-job"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.strip() == "no job no-such-job", result.stderr

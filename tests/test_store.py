"""The job store: migrations and the backends' durable state."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from wps_gateway.store.backend_state import StoreBackendState
from wps_gateway.store.db import Store
from wps_gateway.store.models import Base


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

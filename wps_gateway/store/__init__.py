"""Job store: models, engine and sessions, migrations."""

"""Real servers the tests start on loopback (PostgreSQL, ZooKeeper)."""

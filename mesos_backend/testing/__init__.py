"""Test doubles and checks for the Mesos backend: protocol validation, a ZooKeeper master publisher."""

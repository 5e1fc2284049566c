"""The Mesos backend: a framework on the Mesos v1 scheduler HTTP API."""

"""Prometheus metrics and the figures the console shows: from the job store and the dispatcher's status."""

"""OGC API - Processes - Part 1: Core 1.0, on the same jobs and store as WPS 1.0.0."""

from .problems import Problem
from .routes import CONFORMANCE, OgcApi

__all__ = ["CONFORMANCE", "OgcApi", "Problem"]

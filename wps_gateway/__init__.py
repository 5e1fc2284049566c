"""WPS processing gateway: OGC WPS in front, a job store in the middle, execution backends behind."""

__version__ = "0.1.0"

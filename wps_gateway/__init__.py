"""WPS processing gateway: OGC WPS in front, a job store in the middle, execution backends behind."""

__version__ = "0.1.0"

# First, before any module imports PyWPS: PyWPS reads the environment into its configuration when imported.
from . import pywps_settings  # noqa: E402, F401

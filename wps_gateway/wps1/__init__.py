"""WPS 1.0.0: the PyWPS-based service and the ExecuteResponse renderer."""

"""The operators' console: server-rendered pages under ``/admin`` over the same views as ``/admin/api``."""

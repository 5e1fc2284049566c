"""Thematic processors shipped with the gateway, one folder per processor (see DESCRIPTOR.md)."""

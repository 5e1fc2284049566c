"""Helpers shared by the processors so that each ``task.py`` only holds its science."""

"""PyWPS gets its own settings and nothing else: never the environment, never the gateway's sections.

Left to itself, PyWPS 4.8 builds its configuration as
``configparser.ConfigParser(os.environ, interpolation=EnvInterpolation())``,
the first time anything asks for a setting, which is while ``pywps`` is being
imported. So every environment variable (``MESOS_SECRET``, a database URL
with its password, deploy tokens) becomes a default of every PyWPS section;
two names that differ only in case (``NO_PROXY`` and ``no_proxy``, both
common) stop the import with ``DuplicateOptionError``; ``$VAR`` in values is
expanded from the environment; and ``/etc/pywps.cfg``, ``~/.pywps.cfg`` are
read behind the gateway's back.

Here PyWPS is imported with the environment out of its sight, and
:func:`configure_pywps` replaces its configuration with PyWPS's built-in
defaults plus PyWPS's own sections of the gateway's configuration (whose
values are final: overrides applied, nothing left to interpolate).
"""

from __future__ import annotations

import configparser
import os
import tempfile
import types
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def _environment_out_of_sight() -> Iterator[None]:
    """Inside the block ``os.environ`` (and so ``os.getenv``) holds only ``PYWPS_CFG=/dev/null`` for Python
    code, so that PyWPS reads no variable and no configuration file (it would read $PYWPS_CFG or else
    ``/etc/pywps.cfg`` and ``~/.pywps.cfg``); the process's own environment, seen by child processes and
    C libraries, is not touched."""
    tempfile.gettempdir()  # settle the temporary folder from the real environment ($TMPDIR) first
    real = os.environ
    os.environ = {"PYWPS_CFG": os.devnull}  # type: ignore[assignment]  # noqa: B003 (hide, not clear)
    try:
        yield
    finally:
        os.environ = real  # noqa: B003


with _environment_out_of_sight():
    import pywps  # noqa: F401  (its import-time configuration load reads os.environ)
import pywps.configuration as pywps_config  # noqa: E402


class _PlainParser(configparser.ConfigParser):
    """A parser that ignores the defaults it is given and interpolates nothing."""

    def __init__(self, defaults: object = None, **_options: object) -> None:
        super().__init__(interpolation=None)


def pywps_builtin_defaults() -> configparser.ConfigParser:
    """PyWPS's hard-coded defaults, taken from PyWPS itself, without the environment.

    ``load_hardcoded_configuration`` runs here with globals of its own, in which
    ``configparser.ConfigParser`` is :class:`_PlainParser`; PyWPS's module is left untouched.
    """
    namespace = {**vars(pywps_config), "configparser": types.SimpleNamespace(ConfigParser=_PlainParser)}
    types.FunctionType(pywps_config.load_hardcoded_configuration.__code__, namespace)()
    return namespace["CONFIG"]


def configure_pywps(parser: configparser.ConfigParser) -> None:
    """PyWPS's configuration: its built-in defaults, overridden by its own sections of ``parser``.

    A section is PyWPS's when PyWPS has defaults for it ([server], [logging], [metadata:main], ...);
    the gateway's sections ([gateway], [local], [mesos]) never reach PyWPS.
    """
    config = pywps_builtin_defaults()
    for section in config.sections():
        if parser.has_section(section):
            for key, value in parser[section].items():
                if (section, key) == ("logging", "format") and value.strip().lower() in ("text", "json"):
                    continue  # the gateway's own log format; PyWPS keeps its format string
                config.set(section, key, value)
    pywps_config.CONFIG = config

"""The start-up heap kept out of the cyclic garbage collector's way.

A gateway process holds a large heap that lives as long as it does (modules,
SQLAlchemy mappings and compiled statements, parsed descriptors, rendered
catalogue documents). Every full collection walks all of it: about 80 ms on
the dispatcher's heap, charged to whatever allocates at that moment (the
planning of a large job, a burst of task events). Once start-up is done,
``freeze_startup_heap`` collects what start-up left behind and moves the rest
to the collector's permanent generation, so later collections walk only what
was allocated since. (CPython's ``gc.freeze``; objects frozen are still freed
by reference counting.)
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once a long-running process has started (``wps-gateway serve`` and ``dispatch`` do)."""
    gc.collect()
    gc.freeze()

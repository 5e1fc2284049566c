"""STAC for job results: items describing each successful job's products, served and pushed.

* ``items``: the STAC Items of a job (``pystac``): a raster output is an Item
  of its own with the footprint, CRS, grid and bands read from the file; the
  job's other outputs are assets of the job's Item; ``processing``,
  ``proj`` and ``raster`` extensions; links to the job and its inputs.
* ``records``: the items as rows of the job store (``stac_items``), and the
  searches the STAC API needs, per-user visibility applied as for jobs.
* ``api``: the STAC API read path under ``/stac``.
* ``publish``: the outbox channels that describe a job once it ended
  (``stac``) and push its items to the portal's catalogue (``catalogue``).
"""

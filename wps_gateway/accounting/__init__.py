"""Accounting: what every attempt used and was allocated, and the reports built on it (``GET /accounting``).

* ``usage``: the dispatcher's one call when an attempt ends (engine figures,
  else the task's own report) and the per-job sums in ``job_usage``;
* ``query``: the report's filters and groupings, parsed the same way for HTTP
  and the CLI, and the one SQL query that answers them;
* ``billing``: ``[accounting] billing_weights``;
* ``formats``, ``charts``, ``page``, ``api``: CSV and text tables, SVG charts,
  the HTML page, the HTTP resource.
"""

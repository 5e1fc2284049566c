"""WPS 2.0 front end: the same jobs and store as WPS 1.0.0, other documents.

``requests`` parses XML and KVP requests, ``service`` handles them through
``jobs.py``, ``render`` builds the documents and ``errors`` the OWS 2.0
exception reports. ``wps1.service.GatewayService.call`` routes 2.0 requests here.
"""

"""The HTTP baseline: a trivial WSGI app served by waitress the way `wps-gateway serve` serves the gateway.

Whatever the gateway costs above this app is the gateway's own (routing,
PyWPS request parsing, the job store, XML rendering); waitress, the loopback
network and the client cost the same on both sides.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

import waitress

# About the size of a WPS 1.0.0 status document head, so both sides move similar bytes.
BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<wps:ExecuteResponse xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS" version="1.0.0">'
        b"<wps:Status><wps:ProcessAccepted>Job accepted and queued</wps:ProcessAccepted></wps:Status>"
        b"</wps:ExecuteResponse>\n")


def bare_app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """Answer every request with the same small XML document."""
    start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    waitress.serve(bare_app, host=args.host, port=args.port, threads=args.threads, ident="bare-wsgi")


if __name__ == "__main__":
    main()

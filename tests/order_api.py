"""The tests' own order system: an HTTP API on 127.0.0.1 in the shape of ESPA's production API.

``GET /api/products?record_limit=N&product_types=T`` hands out up to N units
of type T that nobody has claimed (status ``submitted``);
``GET /api/configuration/run_mesos_tasks`` is its run switch;
``POST /api/update_status`` and ``POST /api/set_product_error`` record what
became of a unit. A unit stays ``submitted`` (and is handed out again) until
it is told otherwise. ``garbage`` makes the products endpoint answer what no
client can use.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

GARBAGE = {
    "html": (200, "text/html", b"<html><body>maintenance</body></html>"),
    "object": (200, "application/json", b'{"products": "later"}'),
    "numbers": (200, "application/json", b"[1, 2, 3]"),
    "truncated": (200, "application/json", b'[{"orderid": "o'),
    "error": (500, "text/plain", b"Internal Server Error"),
}


class OrderApi:
    def __init__(self) -> None:
        self.units: list[dict[str, Any]] = []
        self.statuses: dict[tuple[str, str], list[str]] = {}  # (orderid, scene) -> every status told, in order
        self.errors: dict[tuple[str, str], str] = {}
        self.run = "True"
        self.garbage: str | None = None
        self.product_requests: list[tuple[str, int]] = []  # (product type, record_limit) of each request
        self.switch_checks = 0
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api"

    def start(self) -> OrderApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, orderid: str, scene: str, product_type: str, **fields: Any) -> None:
        with self.lock:
            self.units.append({"orderid": orderid, "scene": scene, "product_type": product_type, **fields,
                               "_status": "submitted"})

    def status_of(self, orderid: str, scene: str) -> str:
        with self.lock:
            return next(u["_status"] for u in self.units if (u["orderid"], u["scene"]) == (orderid, scene))

    def told(self, orderid: str, scene: str) -> list[str]:
        with self.lock:
            return list(self.statuses.get((orderid, scene), []))

    # -- the API --------------------------------------------------------------------

    def products(self, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        kind = (query.get("product_types") or [""])[0]
        limit = int((query.get("record_limit") or ["50"])[0])
        with self.lock:
            self.product_requests.append((kind, limit))
            if self.garbage:
                return GARBAGE[self.garbage]
            handed = [u for u in self.units if u["_status"] == "submitted" and (not kind or u["product_type"] == kind)]
            body = [{k: v for k, v in u.items() if not k.startswith("_")} for u in handed[:limit]]
        return 200, "application/json", json.dumps(body).encode()

    def switch(self) -> tuple[int, str, bytes]:
        with self.lock:
            self.switch_checks += 1
            return 200, "application/json", json.dumps({"run_mesos_tasks": self.run}).encode()

    def update(self, body: dict[str, Any], error: bool) -> tuple[int, str, bytes]:
        key = (body.get("orderid"), body.get("name"))
        with self.lock:
            unit = next((u for u in self.units if (u["orderid"], u["scene"]) == key), None)
            if unit is None or not body.get("processing_loc"):
                return 404, "application/json", b'{"msg": "no such product"}'
            status = "error" if error else body["status"]
            unit["_status"] = status
            self.statuses.setdefault(key, []).append(status)
            if error:
                self.errors[key] = body.get("error", "")
        return 200, "application/json", b'{"result": true}'


def _handler(api: OrderApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            if url.path == "/api/products":
                self._answer(*api.products(parse_qs(url.query)))
            elif url.path == "/api/configuration/run_mesos_tasks":
                self._answer(*api.switch())
            else:
                self._answer(404, "text/plain", b"not found")

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path in ("/api/update_status", "/api/set_product_error"):
                self._answer(*api.update(body, error=self.path.endswith("error")))
            else:
                self._answer(404, "text/plain", b"not found")

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler

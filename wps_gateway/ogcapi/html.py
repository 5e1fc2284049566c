"""Plain HTML pages for people with a browser, rendered from the same JSON documents.

Every page is built from the document the JSON client gets, so the two can
never disagree. No templates engine and no scripts: a few functions, and
every value goes through ``html.escape``.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

STYLE = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
         "pre{background:#f6f6f6;padding:.5em;overflow:auto}")


def page(title: str, body: str) -> str:
    """A complete HTML document around ``body`` (already escaped HTML)."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n")


def anchor(href: str, text: str) -> str:
    return f'<a href="{escape(href, quote=True)}">{escape(text)}</a>'


def links_list(links: list[dict[str, str]]) -> str:
    items = "".join(f"<li>{anchor(item['href'], item.get('title') or item['href'])} "
                    f"<small>({escape(item.get('rel', ''))}, {escape(item.get('type', ''))})</small></li>"
                    for item in links)
    return f"<h2>Links</h2><ul>{items}</ul>"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A table; the cells are HTML the caller escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _href(links: list[dict[str, str]], rel: str, type_: str = "text/html") -> str | None:
    return next((item["href"] for item in links if item.get("rel") == rel and item.get("type") == type_), None)


def _paragraph(text: str | None) -> str:
    return f"<p>{escape(text)}</p>" if text else ""


def landing(doc: dict[str, Any]) -> str:
    return page(doc.get("title", "Landing page"), _paragraph(doc.get("description")) + links_list(doc["links"]))


def processes(doc: dict[str, Any]) -> str:
    rows = [[anchor(_href(p["links"], "alternate") or p["links"][0]["href"], p["id"]), escape(p.get("title", "")),
             escape(p.get("version", "")), escape(p.get("description", ""))] for p in doc["processes"]]
    return page("Processes", table(["id", "title", "version", "description"], rows) + links_list(doc["links"]))


def process(doc: dict[str, Any]) -> str:
    def rows(entries: dict[str, Any], occurs: bool) -> list[list[str]]:
        out = []
        for name, entry in entries.items():
            row = [escape(name), escape(entry.get("title", "")), escape(entry.get("description", ""))]
            if occurs:
                row.append(escape(f"{entry.get('minOccurs', 1)}..{entry.get('maxOccurs', 1)}"))
            row.append(f"<code>{escape(json.dumps(entry.get('schema', {})))}</code>")
            out.append(row)
        return out

    body = (_paragraph(doc.get("description"))
            + f"<p>Version {escape(doc.get('version', ''))}; job control: "
              f"{escape(', '.join(doc.get('jobControlOptions', [])))}</p>"
            + "<h2>Inputs</h2>" + table(["id", "title", "description", "occurs", "schema"],
                                         rows(doc.get("inputs", {}), True))
            + "<h2>Outputs</h2>" + table(["id", "title", "description", "schema"], rows(doc.get("outputs", {}), False))
            + links_list(doc["links"]))
    return page(f"Process {doc['id']}: {doc.get('title', '')}", body)


def jobs(doc: dict[str, Any]) -> str:
    rows = [[anchor(_href(j["links"], "alternate") or j["links"][0]["href"], j["jobID"]),
             escape(j.get("processID", "")), escape(j["status"]), escape(str(j.get("progress", ""))),
             escape(j.get("created", "")), escape(j.get("message", ""))] for j in doc["jobs"]]
    return page("Jobs", table(["job", "process", "status", "progress", "created", "message"], rows)
                + links_list(doc["links"]))


def job(doc: dict[str, Any]) -> str:
    fields = ["processID", "status", "message", "progress", "created", "started", "finished", "updated"]
    rows = [[escape(name), escape(str(doc[name]))] for name in fields if name in doc]
    usage = doc.get("usage")
    spent = ("<h2>Usage</h2>" + table(["figure", "value"], [[escape(k), escape(f"{v:,}")] for k, v in usage.items()])
             if usage else "")
    return page(f"Job {doc['jobID']}", table(["", ""], rows) + spent + links_list(doc["links"]))


def document(title: str, doc: Any) -> str:
    """Any other resource (conformance, results, the API definition) as readable, linked JSON."""
    links = doc.get("links", []) if isinstance(doc, dict) else []
    body = f"<pre>{escape(json.dumps(doc, indent=2))}</pre>"
    return page(title, body + (links_list(links) if links else ""))

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
    """A table; the cells are HTML the caller escaped. No headers: no header row."""
    head = f"<thead><tr>{''.join(f'<th>{escape(h)}</th>' for h in headers)}</tr></thead>" if headers else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def fields(entries: list[tuple[str, str]]) -> str:
    """Name/value pairs (values escaped by the caller), as a table whose names head their rows."""
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{value}</td></tr>" for name, value in entries)
    return f"<table><tbody>{rows}</tbody></table>"


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
    names = ["processID", "status", "message", "progress", "created", "started", "finished", "updated"]
    entries = [(name, escape(str(doc[name]))) for name in names if name in doc]
    usage = doc.get("usage")
    spent = ("<h2>Usage</h2>" + fields([(escape(k), escape(f"{v:,}")) for k, v in usage.items()]) if usage else "")
    return page(f"Job {doc['jobID']}", fields(entries) + spent + links_list(doc["links"]))


def results(job_id: str, doc: dict[str, Any]) -> str:
    """A job's outputs: a link for each output by reference, the value of the others."""
    entries = []
    for name, value in doc.items():
        if isinstance(value, dict) and "href" in value:
            shown = anchor(value["href"], value.get("title") or value["href"])
            if value.get("type"):
                shown += f" <small>({escape(value['type'])})</small>"
        elif isinstance(value, dict | list):
            shown = f"<pre>{escape(json.dumps(value, indent=2))}</pre>"
        else:
            shown = escape(str(value))
        entries.append((name, shown))
    return page(f"Results of job {job_id}", fields(entries))


def problem(doc: dict[str, Any]) -> str:
    """An error for a person: what went wrong, and the way back."""
    body = (_paragraph(doc.get("detail")) + f"<p><small>{escape(str(doc.get('type', '')))}</small></p>"
            + f"<p>{anchor('/', 'Landing page')}</p>")
    return page(f"{doc.get('status', '')} {doc.get('title', 'Error')}", body)


def api(doc: dict[str, Any]) -> str:
    """The API definition as a reference page: each path with its operations, parameters and answers.
    Everything is on the page (no scripts or styles from the network); the JSON is one link away."""
    components = doc.get("components", {})
    sections = []
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            params = [_parameter(p, components) for p in operation.get("parameters", [])]
            answers = ", ".join(f"{code} {escape(_response_text(r, components))}"
                                for code, r in operation.get("responses", {}).items())
            body = _paragraph(operation.get("summary"))
            if params:
                body += table(["parameter", "in", "required", "schema"], params)
            if "requestBody" in operation:
                types = ", ".join(operation["requestBody"].get("content", {}))
                body += f"<p>Request body: {escape(types)}</p>"
            body += f"<p>Answers: {answers}</p>"
            sections.append(f'<h2 id="{escape(operation.get("operationId", ""), quote=True)}">'
                            f"{escape(method.upper())} <code>{escape(path)}</code></h2>{body}")
    info = doc.get("info", {})
    links = links_list([{"href": "?f=json", "rel": "alternate", "type": "application/vnd.oai.openapi+json",
                         "title": "this definition as OpenAPI 3.0 JSON"}])
    return page(info.get("title", "API definition"), _paragraph(info.get("description")) + links
                + "".join(sections))


def _resolved(item: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = item.get("$ref", "")
    if ref.startswith("#/components/"):
        _, _, kind, name = ref.split("/", 3)
        return components.get(kind, {}).get(name, {})
    return item


def _parameter(item: dict[str, Any], components: dict[str, Any]) -> list[str]:
    parameter = _resolved(item, components)
    return [escape(parameter.get("name", "")), escape(parameter.get("in", "")),
            "yes" if parameter.get("required") else "no",
            f"<code>{escape(json.dumps(parameter.get('schema', {})))}</code>"]


def _response_text(item: dict[str, Any], components: dict[str, Any]) -> str:
    return _resolved(item, components).get("description", "")


def document(title: str, doc: Any) -> str:
    """Any other resource (conformance, results, the API definition) as readable, linked JSON."""
    links = doc.get("links", []) if isinstance(doc, dict) else []
    body = f"<pre>{escape(json.dumps(doc, indent=2))}</pre>"
    return page(title, body + (links_list(links) if links else ""))

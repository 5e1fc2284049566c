"""The console's style and its one small script, inlined in every page (nothing is fetched from anywhere).

The script only refreshes: every ``data-refresh`` seconds it fetches the page
it is on again and swaps in the parts marked ``data-live`` (tables and
figures, never a form being filled in), so the rendering lives in one place,
on the server, and every page reads the same with the script off.
"""

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1b1f23;background:#fff}
header{background:#24292f;color:#fff;padding:.5em 1.5em;display:flex;gap:1.5em;align-items:baseline}
header a{color:#fff;text-decoration:none}header a.here{font-weight:bold;text-decoration:underline}
header .who{margin-left:auto;color:#c9d1d9;font-size:.9em}
main{padding:1em 1.5em;max-width:90em}
h1{font-size:1.4em;margin:.3em 0 .6em}h2{font-size:1.15em;margin:1.4em 0 .4em}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #d0d7de;padding:.25em .5em;text-align:left;
vertical-align:top;font-size:.92em}th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;padding:.6em;overflow:auto;max-height:40em;white-space:pre-wrap;word-break:break-all}
.status{font-weight:bold}.status-successful,.status-succeeded{color:#1a7f37}.status-failed,.status-lost{color:#cf222e}
.status-running{color:#0969da}.status-accepted,.status-queued,.status-pending,.status-launched{color:#9a6700}
.status-dismissed,.status-cancelled,.status-killed{color:#57606a}
form.inline{display:inline-block;margin:0 .6em .4em 0}form.filters{background:#f6f8fa;padding:.6em;margin-bottom:.6em}
form.filters label{margin-right:.8em;white-space:nowrap}
.note{color:#57606a;font-size:.9em}.error{color:#cf222e}.flash{background:#ddf4ff;padding:.4em .8em}
details{margin:.2em 0}progress{width:7em;vertical-align:middle}
nav.pages a,nav.pages span{margin-right:.8em}
"""

SCRIPT = """
(function () {
  "use strict";
  var every = Number(document.body.getAttribute("data-refresh") || 0) * 1000;
  var stamp = document.getElementById("updated");
  if (!every || !window.fetch || !window.DOMParser) { return; }
  function say(text, bad) {
    if (stamp) { stamp.textContent = text; stamp.className = bad ? "note error" : "note"; }
  }
  function refresh() {
    fetch(window.location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("the gateway answered " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (part) {
          var replacement = fresh.getElementById(part.id);
          if (replacement) { part.replaceWith(document.importNode(replacement, true)); }
        });
        var again = Number(fresh.body.getAttribute("data-refresh") || 0) * 1000;
        say("updated " + new Date().toLocaleTimeString(), false);
        if (again) { window.setTimeout(refresh, again); } else { say("final: no more updates", false); }
      })
      .catch(function (error) {
        say("not updated: " + error.message, true);
        window.setTimeout(refresh, every * 2);
      });
  }
  window.setTimeout(refresh, every);
})();
"""

"""The static parts of the round report: its stylesheet and its one small script (table sorting).

Kept apart from relabel/report/page.py so the page logic reads without 150 lines of CSS in the way. Both are inlined
into the page (no external files, fonts or scripts: the report opens offline), and the script is allowed by
its hash in the page's Content-Security-Policy, so any other script that slipped into the page would not run.
"""
from __future__ import annotations

import base64
import hashlib

STYLE = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --soft:#f8fafc; --blue:#2563eb; --red:#dc2626;
        --green:#15803d; --amber:#b45309; }
* { box-sizing: border-box; }
body { margin: 0; background: #f1f5f9; color: var(--ink);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 24px 48px; }
header h1 { font-size: 24px; margin: 0 0 4px; }
header p { margin: 0; color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px;
          margin-top: 18px; }
section h2 { font-size: 17px; margin: 0 0 4px; }
section > p.lead { margin: 0 0 12px; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(6, 1fr); gap: 10px; margin: 12px 0 14px; }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .v { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .k { color: var(--muted); font-size: 12px; }
.card .d { font-size: 12px; color: var(--muted); }
.card .d.good { color: var(--green); } .card .d.bad { color: var(--red); }
img.plot { display: block; max-width: 100%; height: auto; margin: 6px auto; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; align-items: start; }
.two figure { margin: 0; }
figcaption { color: var(--muted); font-size: 12px; text-align: center; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: var(--soft); white-space: nowrap; }
td.n, th.n { text-align: right; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #cbd5e1; }
table.sortable th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--ink); }
table.sortable th[aria-sort="descending"]::after { content: " \\2193"; color: var(--ink); }
.up { color: var(--green); } .down { color: var(--red); }
ul.pairs { margin: 8px 0 0; padding-left: 18px; }
.note { color: var(--muted); font-style: italic; }
.scroll { max-height: 420px; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
.items td.text { max-width: 380px; }
.items .excerpt { white-space: pre-wrap; word-break: break-word; display: -webkit-box; -webkit-box-orient: vertical;
                  -webkit-line-clamp: 3; line-clamp: 3; overflow: hidden; cursor: pointer; }
.items .excerpt.open { display: block; -webkit-line-clamp: unset; line-clamp: none; cursor: auto; }
.banner { border-radius: 10px; padding: 14px 18px; margin-top: 18px; font-size: 15px; }
.banner.done { background: #dcfce7; border: 1px solid #86efac; color: #14532d; }
tfoot td { font-weight: 600; background: var(--soft); }
table.confusion { width: auto; margin-top: 6px; }
table.confusion th, table.confusion td { padding: 2px 6px; font-size: 12px; }
table.confusion td.diag { background: #dcfce7; }
table.matrix { width: auto; }
table.matrix td { min-width: 64px; white-space: nowrap; }
table.matrix td.self { color: var(--muted); background: var(--soft); }
table.matrix tbody th { white-space: nowrap; font-size: 13px; color: var(--ink); font-weight: 500; }
details summary { cursor: pointer; color: var(--blue); font-size: 12px; }
.items .who { color: var(--muted); font-size: 12px; }
.label { display: inline-block; padding: 0 6px; border-radius: 4px; background: #e0e7ff; color: #1e3a8a;
         font-size: 12px; margin: 1px 0; }
.label.sugg { background: #dcfce7; color: #14532d; }
.tag { font-size: 11px; color: var(--amber); }
footer { color: var(--muted); font-size: 12px; margin-top: 16px; text-align: center; }
a { color: var(--blue); }
@media (max-width: 900px) { .cards { grid-template-columns: repeat(3, 1fr); } .two { grid-template-columns: 1fr; } }
"""

# Sorts a table.sortable by the clicked column: numbers by their data-v attribute, text by its content. It moves
# existing rows only (no innerHTML), so sorting can never turn escaped text back into markup. A click (or Enter)
# on a clamped excerpt toggles the class that shows all of it.
SCRIPT = """
document.querySelectorAll(".excerpt").forEach(function (el) {
  function toggle() { el.classList.toggle("open"); }
  el.addEventListener("click", toggle);
  el.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { toggle(); } });
});
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("th");
  heads.forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var numeric = th.classList.contains("n");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        if (!numeric) { return cell.textContent.toLowerCase(); }
        var v = parseFloat(cell.getAttribute("data-v"));
        return isNaN(v) ? (asc ? Infinity : -Infinity) : v;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def script_hash() -> str:
    """The CSP source that allows exactly SCRIPT: 'sha256-<base64 digest>'."""
    digest = hashlib.sha256(SCRIPT.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_security_policy() -> str:
    """Nothing may load from anywhere (no network at all); images only from data: URIs; only our script runs."""
    return ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
            f"script-src {script_hash()}; base-uri 'none'; form-action 'none'")

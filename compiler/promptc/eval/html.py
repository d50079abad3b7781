"""``report.html``: the eval in one self-contained page — the first lines, the summary table,
the charts (PNG data URIs), and every item's answer in every variant beside its gold answer,
with the request and the model output that produced it, filterable by status and variant.

Nothing is fetched: the style, the script and the images are inline, so that the file opens
from a disk, a mail or a CI artefact with no server. Request texts are written once each (in a
JSON block the script reads), not once per item, so that a batch of 32 costs one copy.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from promptc import ir
from promptc.build import read_requests
from promptc.eval.charts import CHART_POSITION, CHART_TOKENS
from promptc.eval.results import VariantResults
from promptc.eval.score import TRUNCATED, pick_answers
from promptc.run.outputs import OUTPUTS_FILE, read_outputs_file

REPORT_HTML = "report.html"

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.lead{font-weight:600}.warn{color:#a40000;font-weight:600}
tr.ok td.status{color:#1a7f37}tr.bad td.status{color:#a40000}
tr.truncated td.status{color:#9a6700;font-weight:600}
img{max-width:100%;border:1px solid #ddd;margin:.3em 0}
pre{white-space:pre-wrap;background:#f7f7f7;border:1px solid #ddd;padding:.6em;max-height:30em;
overflow:auto}button.req{font-size:12px}#shown{color:#555}
"""

SCRIPT = """
(function () {
  var requests = JSON.parse(document.getElementById("requests").textContent);
  var rows = Array.prototype.slice.call(document.querySelectorAll("#items tbody tr"));
  var byStatus = document.getElementById("status");
  var byVariant = document.getElementById("variant");
  function filter() {
    var shown = 0;
    rows.forEach(function (tr) {
      var ok = (byStatus.value === "" || tr.dataset.status === byStatus.value) &&
               (byVariant.value === "" || tr.dataset.variant === byVariant.value);
      tr.hidden = !ok;
      shown += ok ? 1 : 0;
    });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " rows";
  }
  byStatus.addEventListener("change", filter);
  byVariant.addEventListener("change", filter);
  document.getElementById("items").addEventListener("click", function (e) {
    var b = e.target.closest("button.req");
    if (!b) { return; }
    var r = requests[b.dataset.variant][b.dataset.request] || {messages: "", output: ""};
    document.getElementById("req-title").textContent =
      b.dataset.variant + " request " + b.dataset.request;
    document.getElementById("req-messages").textContent = r.messages;
    document.getElementById("req-output").textContent = r.output;
    document.getElementById("request").hidden = false;
  });
  filter();
})();
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _values(values: Mapping[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in values.items())


def _table(rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _chart(charts: Mapping[str, bytes], name: str, alt: str) -> str:
    if name not in charts:
        return f"<p>({_e(alt)}: not drawn; run without --no-charts)</p>"
    data = base64.b64encode(charts[name]).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _requests(v: VariantResults) -> dict[str, dict[str, str]]:
    """Request id → its messages and the model's output, as text."""
    outputs = read_outputs_file(v.folder / OUTPUTS_FILE).answers
    out: dict[str, dict[str, str]] = {}
    for r in read_requests(v.folder):
        messages = "\n\n".join(f"[{m.get('role')}]\n{m.get('content')}" for m in r.messages)
        answer = outputs.get(r.id, {})
        finish = answer.get("finish_reason")
        output = str(answer.get("output", "(no answer)"))
        out[r.id] = {
            "messages": messages,
            "output": output + (f"\n\n[finish: {finish}]" if finish else ""),
        }
    return out


def _item_rows(
    task: ir.Task, report: Mapping[str, Any], variants: Sequence[VariantResults]
) -> tuple[str, dict[str, dict[str, dict[str, str]]]]:
    """The per-item table's body (one row per item and variant) and every request's text."""
    by_name = {v.name: v for v in variants}
    gold = {i.id: i.gold for i in task.items if i.gold}
    # The verdict the figures count: numbers within the report's --tolerance are right.
    tolerance = None if report.get("tolerance") is None else Decimal(report["tolerance"])
    rows: list[str] = []
    texts: dict[str, dict[str, dict[str, str]]] = {}
    for r in report["variants"]:
        v = by_name[r["variant"]]
        texts[v.name] = _requests(v)
        answers = pick_answers(v.results, v.targets, v.positions)
        covered = set(v.item_ids) or set(gold)
        for item_id in (i for i in gold if i in covered):
            a = answers.get(item_id)
            status = a.status if a is not None else "missing"
            right = _right(task, gold[item_id], a.values if a else {}, status, tolerance)
            css = "ok" if status == "ok" else TRUNCATED if status == TRUNCATED else "bad"
            button = (
                f'<button class="req" data-variant="{_e(v.name)}" '
                f'data-request="{_e(a.request_id)}">{_e(a.request_id)}</button>'
                if a is not None and a.request_id in texts[v.name]
                else "-"
            )
            rows.append(
                f'<tr class="{css}" data-status="{_e(status)}" data-variant="{_e(v.name)}">'
                f"<td>{_e(item_id)}</td><td>{_e(v.name)}</td>"
                f'<td class="status">{_e(status)}</td><td>{"yes" if right else "no"}</td>'
                f"<td>{_e(_values(a.values) if a else '')}</td><td>{_e(_values(gold[item_id]))}</td>"
                f"<td>{a.position if a and a.position else '-'}</td><td>{button}</td></tr>"
            )
    return "\n".join(rows), texts


def _right(
    task: ir.Task,
    gold: Mapping[str, Any],
    values: Mapping[str, Any],
    status: str,
    tolerance: Decimal | None,
) -> bool:
    if status != "ok":
        return False
    for name, g in gold.items():
        f = next((o for o in task.outputs if o.name == name), None)
        if f is not None and (
            name not in values or not f.type.matches(f, values[name], g, tolerance)
        ):
            return False
    return True


def report_html(
    report: Mapping[str, Any],
    task: ir.Task,
    variants: Sequence[VariantResults],
    charts: Mapping[str, bytes],
    table: Sequence[Sequence[str]],
    lead: Sequence[str],
) -> str:
    """The page, as text, holding the charts drawn (PNG bytes by file name)."""
    body, texts = _item_rows(task, report, variants)
    statuses = sorted({s for r in report["variants"] for s, k in r["statuses"].items() if k})
    names = [r["variant"] for r in report["variants"]]
    # "</" would end the script element early: JSON allows it escaped.
    blob = json.dumps(texts, sort_keys=True, ensure_ascii=False).replace("</", "<\\/")
    options = "".join(f'<option value="{_e(s)}">{_e(s)}</option>' for s in statuses)
    variant_options = "".join(f'<option value="{_e(n)}">{_e(n)}</option>' for n in names)
    lead_html = "".join(
        f'<p class="{"warn" if k == 0 and report["truncated_variants"] else "lead"}">{_e(line)}</p>'
        for k, line in enumerate(lead)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>promptc eval: {_e(report["spec"])}</title><style>{STYLE}</style></head>
<body>
<h1>promptc eval: {_e(report["spec"])}</h1>
{lead_html}
<p>{report["items"]} items with gold answers; baseline {_e(report["baseline"])}; cost in
{_e(report["cost_unit"])}. * marks the Pareto front of accuracy against total cost per question
(compared exactly, shown rounded; a variant with requests that got no answer is on none);
! a variant cut by max_tokens.</p>
<h2>Summary</h2>
{_table(table)}
<h2>Charts</h2>
{_chart(charts, CHART_TOKENS, "accuracy against cost per question")}
{_chart(charts, CHART_POSITION, "accuracy by position in the batch")}
<h2>Items</h2>
<p><label>status <select id="status"><option value="">all</option>{options}</select></label>
<label>variant <select id="variant"><option value="">all</option>{variant_options}</select></label>
<span id="shown"></span></p>
<table id="items"><thead><tr><th>item</th><th>variant</th><th>status</th><th>correct</th>
<th>answer</th><th>gold</th><th>position</th><th>request</th></tr></thead>
<tbody>
{body}
</tbody></table>
<section id="request" hidden><h2 id="req-title"></h2><h3>messages</h3><pre id="req-messages"></pre>
<h3>model output</h3><pre id="req-output"></pre></section>
<script type="application/json" id="requests">{blob}</script>
<script>{SCRIPT}</script>
</body></html>
"""

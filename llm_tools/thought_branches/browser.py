"""A self-contained HTML view of one analysed chain of thought (no server, no external assets).

The page shows the problem, the CoT with every sentence shaded by the chosen importance metric
(red raises the metric, blue lowers it; the scale is the largest absolute value along the CoT),
its confidence interval on hover, and on click a panel with every metric and CI of that
sentence, its type, the answer distribution before and after it, and its resilience scores
when measured. A small SVG chart plots the chosen metric along the CoT with its CIs. Data,
styles and script are inlined, so the file can be mailed or opened from disk.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from llm_tools.thought_branches.analysis import METRIC_NAMES, CoTAnalysis

__all__ = ["render_html", "write_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#fafafa;
color:#222}
header{padding:12px 20px;background:#263238;color:#fff}
header h1{font-size:18px;margin:0}
header .sub{font-size:12px;opacity:.8}
main{display:flex;gap:18px;padding:16px 20px}
#left{flex:3;min-width:0}
#right{flex:2;min-width:280px}
.box{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;margin-bottom:14px}
.box h2{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#555;margin:0 0 8px}
#problem{white-space:pre-wrap;font-size:14px}
#cot{white-space:pre-wrap;line-height:1.9;font-size:15px}
.sent{cursor:pointer;border-radius:3px;padding:1px 0}
.sent.sel{outline:2px solid #111}
table{border-collapse:collapse;font-size:12px;width:100%}
td,th{padding:2px 6px;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{height:10px;background:#5c6bc0;display:inline-block;vertical-align:middle}
.legend{font-size:12px;color:#555}
select{font-size:13px}
#chart svg{width:100%;height:150px}
"""

_JS = r"""
const D = JSON.parse(document.getElementById('data').textContent);
const sel = document.getElementById('metric');
let current = null;
function fmt(x){return (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(3));}
function color(v, scale){
  if(!isFinite(v) || scale <= 0) return 'transparent';
  const a = Math.min(1, Math.abs(v) / scale) * 0.75;
  return v >= 0 ? `rgba(229,57,53,${a})` : `rgba(30,136,229,${a})`;
}
function shade(){
  const m = sel.value;
  const vals = D.metrics.map(x => x[m] ? x[m][0] : NaN);
  const scale = Math.max(1e-12, ...vals.filter(isFinite).map(Math.abs));
  document.querySelectorAll('.sent').forEach(el => {
    const i = +el.dataset.i, e = D.metrics[i][m];
    el.style.background = color(e ? e[0] : NaN, scale);
    el.title = e ? `#${i} ${m} = ${fmt(e[0])} [${fmt(e[1])}, ${fmt(e[2])}]` : `#${i}`;
  });
  document.getElementById('scale').textContent = fmt(scale);
  chart(m);
  if(current !== null) show(current);
}
function dist(d){
  const keys = Object.keys(d);
  if(!keys.length) return '<i>no answers</i>';
  return '<table>' + keys.map(k => `<tr><td>${esc(k)}${k===D.target?' ✓':''}</td>` +
    `<td class="num">${(100*d[k]).toFixed(0)}%</td><td style="width:60%">` +
    `<span class="bar" style="width:${100*d[k]}%"></span></td></tr>`).join('') + '</table>';
}
function esc(s){const t=document.createElement('span');t.textContent=s;return t.innerHTML;}
function show(i){
  current = i;
  document.querySelectorAll('.sent').forEach(el => el.classList.toggle('sel', +el.dataset.i===i));
  const s = D.sentences[i], m = D.metrics[i];
  let h = `<div id="sent-index">Sentence ${i} of ${D.sentences.length} · <b>${s[3]}</b></div>`;
  h += `<p><q>${esc(s[2])}</q></p><table id="metric-table"><tr><th>metric</th>` +
       `<th>value</th><th>95% CI</th></tr>`;
  for(const k of Object.keys(m)){
    const e = m[k];
    h += `<tr data-metric="${k}"${k===sel.value?' style="font-weight:bold"':''}><td>${k}</td>` +
         `<td class="num">${fmt(e[0])}</td><td class="num">[${fmt(e[1])}, ${fmt(e[2])}]</td></tr>`;
  }
  h += '</table><h2 style="margin-top:10px">answers before (S<sub>i</sub>)</h2>' +
       dist(D.distributions[i]) +
       '<h2 style="margin-top:10px">answers after (S<sub>i+1</sub>)</h2>' +
       dist(D.distributions[i+1]);
  const r = D.resilience[String(i)];
  if(r){
    h += `<h2 style="margin-top:10px">resilience</h2><div id="resilience">mean score ` +
         `${r.mean_score.toFixed(2)} over ${r.scores.length} rollouts; persisted ` +
         `${(100*r.persistence_rate).toFixed(0)}%, abandoned ` +
         `${(100*r.abandonment_rate).toFixed(0)}%; scores ${r.scores.join(', ')}</div>`;
  }
  document.getElementById('detail').innerHTML = h;
}
function chart(m){
  const n = D.metrics.length, W = 600, H = 150, pad = 28;
  const es = D.metrics.map(x => x[m] || [NaN, NaN, NaN]);
  const lo = Math.min(0, ...es.map(e => e[1]).filter(isFinite));
  const hi = Math.max(0, ...es.map(e => e[2]).filter(isFinite));
  const y = v => H - pad/2 - (v - lo) / Math.max(hi - lo, 1e-12) * (H - pad);
  const x = i => pad + (n > 1 ? i * (W - 2*pad) / (n - 1) : (W - 2*pad) / 2);
  let s = `<svg viewBox="0 0 ${W} ${H}">`;
  s += `<line x1="${pad}" x2="${W-pad}" y1="${y(0)}" y2="${y(0)}" stroke="#999"/>`;
  es.forEach((e, i) => {
    if(!isFinite(e[0])) return;
    s += `<line x1="${x(i)}" x2="${x(i)}" y1="${y(e[1])}" y2="${y(e[2])}" stroke="#888"/>`;
    s += `<circle cx="${x(i)}" cy="${y(e[0])}" r="3.5" fill="#c62828" data-i="${i}">` +
         `<title>#${i}: ${fmt(e[0])}</title></circle>`;
  });
  s += `<text x="2" y="12" font-size="10">${fmt(hi)}</text>` +
       `<text x="2" y="${H-4}" font-size="10">${fmt(lo)}</text></svg>`;
  document.getElementById('chart').innerHTML = s;
}
document.querySelectorAll('.sent').forEach(
  el => el.addEventListener('click', () => show(+el.dataset.i)));
sel.addEventListener('change', shade);
shade();
"""


def render_html(analysis: CoTAnalysis, *, metric: str = "counterfactual_importance_accuracy",
                title: str | None = None) -> str:
    """The page as one HTML string.

    Args:
      analysis: the analysed CoT.
      metric: the metric selected when the page opens.
      title: page title (default: the problem id and model).

    Raises:
      TypeError: if ``analysis`` is not a :class:`CoTAnalysis`.
      ValueError: if ``metric`` is not among the analysis' metrics, or it has no sentences.
    """
    if not isinstance(analysis, CoTAnalysis):
        raise TypeError(f"render_html: analysis must be a CoTAnalysis, got "
                        f"{type(analysis).__name__}")
    if not analysis.sentences or len(analysis.metrics) != len(analysis.sentences):
        raise ValueError(f"render_html: the analysis has {len(analysis.sentences)} sentences "
                         f"and {len(analysis.metrics)} metric rows; need one per sentence")
    names = [m for m in METRIC_NAMES if m in analysis.metrics[0]] + sorted(
        m for m in analysis.metrics[0] if m not in METRIC_NAMES)
    if metric not in names:
        raise ValueError(f"render_html: metric {metric!r} is not in the analysis; choose one of "
                         f"{names}")
    title = title or f"{analysis.problem_id} · {analysis.model}"
    parts, pos = [], 0
    for i, (start, end, text, _) in enumerate(analysis.sentences):
        parts.append(html.escape(analysis.cot[pos:start]))
        parts.append(f'<span class="sent" data-i="{i}" id="s{i}">{html.escape(text)}</span>')
        pos = end
    parts.append(html.escape(analysis.cot[pos:]))
    options = "".join(f'<option value="{m}"{" selected" if m == metric else ""}>{m}</option>'
                      for m in names)
    data = analysis.dumps().replace("</", "<\\/")
    n = analysis.n_rollouts
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<header><h1>{html.escape(title)}</h1><div class="sub">Thought Branches view · {n} rollouts per
sentence · target answer {html.escape(analysis.target)}</div></header>
<main><div id="left">
<div class="box"><h2>problem</h2><div id="problem">{html.escape(analysis.prompt)}</div></div>
<div class="box"><h2>chain of thought</h2>
<div class="legend">shade by <select id="metric">{options}</select> · red = raises, blue = lowers ·
full colour at |value| = <span id="scale"></span> · click a sentence</div>
<div id="cot">{"".join(parts)}</div></div>
<div class="box"><h2>importance along the CoT (95% CI)</h2><div id="chart"></div></div>
</div><div id="right"><div class="box"><h2>sentence</h2><div id="detail">
<i>Click a sentence to see its numbers.</i></div></div></div></main>
<script type="application/json" id="data">{data}</script>
<script>{_JS}</script></body></html>
"""


def write_html(path: str | os.PathLike, analysis: CoTAnalysis, **kwargs) -> Path:
    """Writes :func:`render_html` to ``path`` atomically; returns the path."""
    from llm_tools.thought_branches.store import _atomic_write_text

    return _atomic_write_text(Path(path), render_html(analysis, **kwargs))


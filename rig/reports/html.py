"""report.html: one self-contained page to open (no network: the style is inline and each
timeline is embedded as a data: URI) for a run and for the matrix: every cell with its
expected and actual verdicts, the reason, the seconds, the repeats and the timelines.

A small inline script counts the pictures the browser decoded and writes the count on the
page's root element (data-images-loaded="3/3"): the browser test reads it back."""

from __future__ import annotations

import base64
import json
import statistics
from html import escape
from pathlib import Path

from rig.core.json_object import JsonObject
from rig.reports.result import RunResult
from rig.reports.text import xml_text

REPORT = "report.html"
STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.PASS { color: #1a7f37; font-weight: bold; } .STALL, .FAIL { color: #c62828; font-weight: bold; }
.ERROR { color: #b26a00; font-weight: bold; }
.disagree { background: #fdecea; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""
COUNT_IMAGES = """
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.documentElement.dataset.imagesLoaded = ok + "/" + imgs.length;
});
"""


def page(title: str, body: list[str]) -> str:
    """The document, with any control character a console put in its text escaped (HTML
    takes them as parse errors, and a lone surrogate cannot be written as UTF-8)."""
    return xml_text("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style><script>{COUNT_IMAGES}</script></head>"
            f"<body><h1>{escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n")


def verdict_span(verdict: str, text: str | None = None) -> str:
    """The verdict in its colour; `text` in the verdict's colour instead of its name."""
    return f'<span class="{escape(verdict)}">{escape(text if text is not None else verdict)}</span>'


def timeline_img(run_dir: Path, alt: str) -> str:
    png = run_dir / "timeline.png"
    if not png.is_file():
        return "<p>(no timeline)</p>"
    data = base64.b64encode(png.read_bytes()).decode()
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def facts_table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def write_run_report(out: Path, r: RunResult) -> Path:
    f, v = r.facts, r.verdict
    rows = [("verdict", verdict_span(v.verdict)), ("reason", escape(v.reason)), ("seconds", f"{r.seconds:.1f}"),
            ("machine", escape(f"{f.arch} {f.machine}, {f.ic}, device {f.device}, consumer {f.consumer}"))]
    if f.l1:
        fix = {True: "has the INTx fix", False: "lacks the INTx fix", None: "fix state unknown"}[f.l1.vfio_intx_fix]
        rows.append(("L1 kernel", escape(f"{f.l1.kernel} ({f.l1.vfio_modules} vfio; {fix})")))
    if f.l0:
        rows.append(("L0 QEMU", escape(f"{f.l0.qemu} ({f.l0.accel})")))
    path = r.interrupt_path
    if path and path.explanation:
        rows.append(("interrupt path", escape(path.explanation)))
    if path and path.deliveries_per_serviced is not None:
        rows.append(("L0 deliveries", f"{path.deliveries} ({path.deliveries_per_serviced:g} per serviced interrupt)"))
    if v.checks:      # a scenario's steps, each as the consumer saw it
        rows.append((f"scenario {escape(v.scenario)}", "<br>".join(
            f"{c.t:.2f} s {escape(c.step)}: {verdict_span('PASS' if c.result == 'ok' else 'STALL', c.result)}"
            + (f" ({escape(c.what)})" if c.what else "") for c in v.checks)))
    files = " ".join(f'<a href="{n}">{n}</a>' for n in ("result.json", "junit.xml", "results.ktap", "rig.log",
                                                            "timeline.svg", "reproduce.sh") if (out / n).exists())
    rows.append(("files", files))
    body = [facts_table(rows), timeline_img(out, f"timeline of {r.name}")]
    (out / REPORT).write_text(page(f"{r.name}: {v.verdict}", body))
    return out / REPORT


def run_dirs(out: Path, result: JsonObject) -> list[Path]:
    return [out / result["id"] / f"run{i}" for i in range(1, len(result["verdicts"]) + 1)]


def run_reason(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "result.json").read_text())["verdict"]["reason"])
    except (OSError, ValueError, KeyError):
        return "(no result.json)"


def trees_side_by_side(results: list[JsonObject]) -> list[str]:
    """An A/B matrix (several kernel trees): each cell once, each tree's verdicts in a
    column, the rows where the trees differ marked. Nothing for one tree."""
    trees = sorted({r.get("cell", {}).get("tree", "") for r in results})
    if len(trees) < 2:
        return []
    rows: dict[str, dict[str, list[str]]] = {}
    for r in results:
        c = r["cell"]
        key = "-".join(str(c[k]) for k in ("arch", "machine", "ic", "vfio", "device", "consumer"))
        rows.setdefault(key, {})[c["tree"]] = r["verdicts"]
    head = "<tr><th>cell</th>" + "".join(f"<th>{escape(t)}</th>" for t in trees) + "</tr>"
    body = []
    for key, per in sorted(rows.items()):
        got = [" ".join(sorted(set(per.get(t, [])))) for t in trees]
        css = ' class="disagree"' if len(set(got)) > 1 else ""
        body.append(f"<tr{css}><td>{escape(key)}</td>" + "".join(
            f"<td>{' '.join(verdict_span(v) for v in g.split()) or '-'}</td>" for g in got) + "</tr>")
    return [f"<h2>The trees side by side</h2><p>Rows marked: the trees' kernels gave different verdicts.</p>"
            f"<table>{head}{''.join(body)}</table>"]


def write_matrix_report(out: Path, results: list[JsonObject]) -> Path:
    head = ("<tr><th>cell</th><th>expected</th><th>got</th><th>agree</th><th>repeats</th>"
            "<th>median s</th><th>L0 deliveries / serviced</th><th>why expected</th></tr>")
    rows, sections = [], []
    for r in results:
        per = [d for d in r.get("deliveries_per_serviced", []) if d is not None]
        deliveries = f"{statistics.median(per):.2f}" if per else "-"
        got = " ".join(verdict_span(v) for v in r["verdicts"])
        css = "" if r["agreement"] == 1 else ' class="disagree"'
        rows.append(f'<tr{css}><td><a href="#{escape(r["id"])}">{escape(r["id"])}</a></td>'
                    f'<td>{verdict_span(r["expected"])}</td><td>{got}</td><td>{r["agreement"] * 100:.0f}%</td>'
                    f'<td>{len(r["verdicts"])}</td><td>{r["seconds"]["median"]:.1f}</td>'
                    f'<td>{deliveries}</td><td>{escape(r["why"])}</td></tr>')
        runs = []
        for i, run in enumerate(run_dirs(out, r), 1):
            runs.append(f'<h3>run {i}: {verdict_span(r["verdicts"][i - 1])}</h3><p>{escape(run_reason(run))} '
                        f'(<a href="{escape(str(run.relative_to(out)))}/report.html">its report</a>)</p>'
                        + timeline_img(run, f"timeline of {r['id']} run {i}"))
        sections.append(f'<h2 id="{escape(r["id"])}">{escape(r["id"])}</h2>'
                        f'<p>expected {verdict_span(r["expected"])}: {escape(r["why"])}</p>' + "".join(runs))
    agree = sum(1 for r in results if r["agreement"] == 1)
    body = [f"<p>{agree} of {len(results)} cells agree with their expectation.</p>", *trees_side_by_side(results),
            f"<table>{head}{''.join(rows)}</table>", *sections]
    (out / REPORT).write_text(page("intx-rig matrix", body))
    return out / REPORT

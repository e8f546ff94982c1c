"""Result files of a run: result.json, junit.xml and timeline.svg (counts per layer)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from .verdict import Sample, Verdict, describe_stop

LAYERS = (("sent", "device: pushed", "#7f7f7f"), ("serviced", "L2: serviced (bytes read)", "#2ca02c"),
          ("l2", "L2: device IRQ count", "#1f77b4"), ("l1", "L1: vfio-intx count", "#d62728"))


def write_result_json(out: Path, data: dict) -> Path:
    p = out / "result.json"
    p.write_text(json.dumps(data, indent=1, default=str))
    return p


def write_junit(out: Path, name: str, verdict: Verdict, seconds: float, log_hint: str) -> Path:
    body = ""
    if verdict.verdict == "STALL":
        body = f'<failure message={quoteattr(describe_stop(verdict))}>{escape(verdict.reason)}</failure>'
    elif verdict.verdict == "ERROR":
        body = f'<error message={quoteattr(verdict.reason)}>{escape(log_hint)}</error>'
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           f'<testsuite name="intx-rig" tests="1" failures="{int(verdict.verdict == "STALL")}" '
           f'errors="{int(verdict.verdict == "ERROR")}" time="{seconds:.1f}">\n'
           f'  <testcase classname="intx-rig" name={quoteattr(name)} time="{seconds:.1f}">{body}'
           f'<system-out>{escape(verdict.verdict + ": " + verdict.reason)}</system-out></testcase>\n'
           '</testsuite>\n')
    p = out / "junit.xml"
    p.write_text(xml)
    return p


class Frame:
    """Plot geometry shared by the SVG and PNG renderers: seconds across, counts up."""

    def __init__(self, samples: list[Sample], width: int = 900, height: int = 420):
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = 70, 250, 40, 50
        self.pw = width - self.left - self.right
        self.ph = height - self.top - self.bottom
        self.tmax = max([s.t for s in samples] + [1.0])
        self.vmax = max([v for s in samples for v in (s.sent, s.serviced, s.l1 or 0, s.l2 or 0)] + [1])

    def x(self, t: float) -> float:
        return self.left + self.pw * t / self.tmax

    def y(self, v: float) -> float:
        return self.top + self.ph - self.ph * v / self.vmax

    def series(self, samples: list[Sample]):
        """(label with last value, color, [(x, y), ...]) per layer."""
        for attr, label, color in LAYERS:
            pts = [(s.t, getattr(s, attr)) for s in samples if getattr(s, attr) is not None]
            last = pts[-1][1] if pts else "n/a"
            yield f"{label}: {last}", color, [(self.x(t), self.y(v)) for t, v in pts]


def timeline_svg(samples: list[Sample], title: str, stall_at: float | None = None,
                 width: int = 900, height: int = 420) -> str:
    """Counts over time, one line per layer; a STALL is marked where the flow stopped."""
    f = Frame(samples, width, height)
    left, top, pw, ph, x = f.left, f.top, f.pw, f.ph, f.x
    tmax, vmax = f.tmax, f.vmax
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="22" font-size="15">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="black"/>',
             f'<text x="{left + pw / 2}" y="{height - 12}" text-anchor="middle">seconds</text>',
             f'<text x="{left - 8}" y="{top + 4}" text-anchor="end">{vmax}</text>',
             f'<text x="{left - 8}" y="{top + ph}" text-anchor="end">0</text>',
             f'<text x="{left + pw}" y="{top + ph + 16}" text-anchor="end">{tmax:.0f}</text>']
    for i, (label, color, pts) in enumerate(f.series(samples)):
        if pts:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        ly = top + 20 * i + 10
        parts.append(f'<line x1="{left + pw + 15}" y1="{ly}" x2="{left + pw + 35}" y2="{ly}" '
                     f'stroke="{color}" stroke-width="3"/>')
        parts.append(f'<text x="{left + pw + 40}" y="{ly + 4}">{escape(label)}</text>')
    if stall_at is not None:
        parts.append(f'<line x1="{x(stall_at):.1f}" y1="{top}" x2="{x(stall_at):.1f}" y2="{top + ph}" '
                     'stroke="black" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{x(stall_at) + 4:.1f}" y="{top + 14}">flow stopped</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def timeline_png(samples: list[Sample], title: str, stall_at: float | None, path: Path) -> None:
    """The same picture as timeline_svg, as a PNG (what CI artifact viewers show inline)."""
    from PIL import Image, ImageDraw, ImageFont
    f = Frame(samples)
    img = Image.new("RGB", (f.width, f.height), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=13)
    d.text((f.left, 12), title, fill="black", font=ImageFont.load_default(size=16))
    d.line([(f.left, f.top), (f.left, f.top + f.ph), (f.left + f.pw, f.top + f.ph)], fill="black")
    d.text((f.left - 8, f.top), str(f.vmax), fill="black", font=font, anchor="ra")
    d.text((f.left - 8, f.top + f.ph), "0", fill="black", font=font, anchor="rd")
    d.text((f.left + f.pw, f.top + f.ph + 6), f"{f.tmax:.0f} s", fill="black", font=font, anchor="ra")
    d.text((f.left + f.pw / 2, f.height - 14), "seconds", fill="black", font=font, anchor="md")
    for i, (label, color, pts) in enumerate(f.series(samples)):
        if len(pts) > 1:
            d.line(pts, fill=color, width=2)
        elif pts:
            d.ellipse([pts[0][0] - 3, pts[0][1] - 3, pts[0][0] + 3, pts[0][1] + 3], fill=color)
        ly = f.top + 20 * i + 10
        d.line([(f.left + f.pw + 15, ly), (f.left + f.pw + 35, ly)], fill=color, width=3)
        d.text((f.left + f.pw + 40, ly), label, fill="black", font=font, anchor="lm")
    if stall_at is not None:
        sx = f.x(stall_at)
        for y0 in range(f.top, f.top + f.ph, 10):
            d.line([(sx, y0), (sx, min(y0 + 5, f.top + f.ph))], fill="black")
        d.text((sx + 4, f.top + 4), "flow stopped", fill="black", font=font)
    img.save(path)


def write_timeline(out: Path, samples: list[Sample], title: str, stall_at: float | None) -> Path:
    (out / "timeline.svg").write_text(timeline_svg(samples, title, stall_at))
    timeline_png(samples, title, stall_at, out / "timeline.png")
    return out / "timeline.png"

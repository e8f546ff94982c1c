"""The timeline of a run, as PNG and SVG: counts per layer over time and, below them, the
interrupt path's events lane by lane (rig.interrupt_path), where the flow stopped marked."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from rig.chain.verdict import Sample
from rig.reports.plot import PngCanvas, SvgCanvas
from rig.trace.path import FORWARD, LANE_LABELS, LANES, InterruptPath, PathEvent

LAYERS = (("sent", "device: pushed", "#7f7f7f"), ("serviced", "consumer: serviced (bytes read)", "#2ca02c"),
          ("l2", "L2: device IRQ count", "#1f77b4"), ("l1", "L1: vfio-intx count", "#d62728"))


LANE_H = 34
KIND_STYLE = (  # (legend, colour, kinds); a tick's height says which
    ("carries it on (push, assert, notify/deliver, handler, serviced)", "#1f77b4", FORWARD),
    ("held back by the controller", "#d62728", {"held", "reject"}),
    ("EOI / unmask / enable", "#2ca02c", {"eoi", "unmask", "enable", "unmask-device", "reassert"}),
    ("mask / disable", "#ff7f0e", {"mask", "disable"}),
    ("other (line low, PQ reads, L2 count moved)", "#aaaaaa", None),
)


def kind_style(kind: str) -> tuple[str, float, float]:
    """(colour, top, bottom) of a tick within a lane, as fractions of its height."""
    for i, (_, color, kinds) in enumerate(KIND_STYLE):
        if kinds is None or kind in kinds:
            return color, *((0.1, 0.9), (0.05, 0.95), (0.5, 0.9), (0.5, 0.9), (0.6, 0.8))[i]
    raise AssertionError(kind)


ZOOM_S = 0.25   # the zoomed lanes: a quarter second around the stop (or the start)


@dataclass
class Window:
    """A time range mapped onto the plot's width."""
    t_from: float
    t_to: float
    left: float
    width: float

    def x(self, t: float) -> float:
        t = min(max(t, self.t_from), self.t_to)
        return self.left + self.width * (t - self.t_from) / (self.t_to - self.t_from)


class Frame:
    """Geometry: counts over the whole drive on top; below, the path's lanes over the
    whole run traced, then zoomed (see _zooms)."""

    def __init__(self, samples: list[Sample], path: InterruptPath | None, stall_at: float | None,
                 width: int = 1100):
        self.samples, self.path = samples, path
        self.events: list[PathEvent] = path.events if path else []
        self.width = width
        self.left, self.right, self.top = 220, 230, 40
        self.pw = width - self.left - self.right
        self.ph = 240
        self.tmax = max([s.t for s in samples] + [e.t for e in self.events] + [1.0])
        self.vmax = max([v for s in samples for v in (s.sent, s.serviced, s.l1 or 0, s.l2 or 0)] + [1])
        # From the first traced event: with L2, that is its boot probing the device.
        self.tmin = min([0.0] + [e.t for e in self.events])
        self.whole = Window(self.tmin, self.tmax, self.left, self.pw)
        pending = path.pending_from if path else stall_at
        self.stall_at = pending if stall_at is not None else None
        self.panels = [(self.whole, "interrupt path, the whole run traced")] + self._zooms()
        lanes_h = len(LANES) * LANE_H + 50
        self.lanes_top = [self.top + self.ph + 50 + i * lanes_h for i in range(len(self.panels))]
        self.height = (self.lanes_top[-1] + lanes_h + 130 if self.events else self.top + self.ph + 40)

    def _zooms(self) -> list[tuple[Window, str]]:
        """A quarter second each. A STALL: the last interrupt L1's handler took (what the
        layers did with it, and did not do after), then the stop. A PASS: the first ones.
        Not clamped at 0: L1's first events can sit just before the first push."""
        def around(t: float, what: str, before: float = ZOOM_S / 2):
            w = Window(t - before, t - before + ZOOM_S, self.left, self.pw)
            return w, f"interrupt path, zoomed on {what} ({w.t_from:.3f} s to {w.t_to:.3f} s)"
        if self.stall_at is None:
            return [around(ZOOM_S / 2, "the first interrupts")]
        zooms = [around(self.stall_at, "the stop")]
        handled = [e.t for e in self.events if e.kind == "handler" and e.t < self.stall_at - ZOOM_S / 2]
        if handled:
            zooms.insert(0, around(handled[-1], "the last interrupt L1 handled", before=0.05))
        return zooms

    def y(self, v: float) -> float:
        return self.top + self.ph - self.ph * v / self.vmax


def draw_timeline(c, f: Frame, title: str) -> None:
    c.text(f.left, 24, title, size=16)
    draw_counts(c, f)
    c.text(f.left + f.pw / 2, f.top + f.ph + 18, "seconds since the drive started", anchor="middle")
    c.text(f.left, f.top + f.ph + 18, f"{f.tmin:.0f} s")
    c.text(f.left + f.pw, f.top + f.ph + 18, f"{f.tmax:.0f} s", anchor="end")
    if not f.events:
        return
    for (window, heading), top in zip(f.panels, f.lanes_top, strict=True):
        draw_lanes(c, f, window, top, heading)
    draw_legend(c, f, f.lanes_top[-1] + len(LANES) * LANE_H + 40)


def draw_counts(c, f: Frame) -> None:
    left, top, pw, ph = f.left, f.top, f.pw, f.ph
    c.line([(left, top), (left, top + ph), (left + pw, top + ph)])
    c.text(left - 8, top + 10, str(f.vmax), anchor="end")
    c.text(left - 8, top + ph, "0", anchor="end")
    c.text(left - 8, top + ph / 2, "count", anchor="end")
    for i, (attr, label, color) in enumerate(LAYERS):
        pts = [(f.whole.x(s.t), f.y(getattr(s, attr))) for s in f.samples if getattr(s, attr) is not None]
        if pts:
            c.line(pts, color, width=2)
        last = next((getattr(s, attr) for s in reversed(f.samples) if getattr(s, attr) is not None), "n/a")
        ly = top + 20 * i + 10
        c.line([(left + pw + 15, ly), (left + pw + 35, ly)], color, width=3)
        c.text(left + pw + 40, ly + 4, f"{label}: {last}")
    if f.stall_at is not None:
        x = f.whole.x(f.stall_at)
        c.line([(x, top), (x, top + ph)], dash=True)
        c.text(x + 4, top + 12, "flow stopped")


def draw_lanes(c, f: Frame, w: Window, top: float, heading: str) -> None:
    stopped = f.path.stopped_layer if f.path else None
    c.text(w.left, top - 8, heading, size=13)
    for i, lane in enumerate(LANES):
        y = top + i * LANE_H
        if lane == stopped:
            c.rect(w.left, y, w.left + w.width, y + LANE_H, "#fbdada")
            c.text(w.left + w.width + 8, y + LANE_H / 2 + 4, "<- the flow stopped here", color="#d62728")
        c.line([(w.left, y + LANE_H), (w.left + w.width, y + LANE_H)], "#dddddd")
        c.text(w.left - 8, y + LANE_H / 2 + 4, LANE_LABELS[lane], anchor="end")
    bottom = top + len(LANES) * LANE_H
    if f.stall_at is not None and w.t_from <= f.stall_at <= w.t_to:
        c.line([(w.x(f.stall_at), top), (w.x(f.stall_at), bottom)], "#888888", dash=True)
    for e in f.events:
        if w.t_from <= e.t <= w.t_to:
            color, a, b = kind_style(e.kind)
            y = top + LANES.index(e.lane) * LANE_H
            c.line([(w.x(e.t), y + a * LANE_H), (w.x(e.t), y + b * LANE_H)], color,
                   width=1 if w is f.whole else 2)
    c.text(w.left, bottom + 14, f"{w.t_from:.3f} s")
    c.text(w.left + w.width, bottom + 14, f"{w.t_to:.3f} s", anchor="end")


def draw_legend(c, f: Frame, y: float) -> None:
    for i, (label, color, _) in enumerate(KIND_STYLE):
        x = f.left + (i % 2) * (f.pw / 2 + 60)
        yy = y + (i // 2) * 18
        c.rect(x, yy - 9, x + 10, yy + 1, color)
        c.text(x + 16, yy, label)
    text = f.path.explanation if f.path else ""
    if f.path and f.path.deliveries_per_serviced is not None:
        text += (f"; L0's controller delivered the line {f.path.deliveries} times, "
                 f"{f.path.deliveries_per_serviced:g} per serviced interrupt")
    for i, line in enumerate(textwrap.wrap(text, 150)[:4]):
        c.text(20, y + 62 + 16 * i, line)


def timeline_svg(samples: list[Sample], title: str, stall_at: float | None = None,
                 path: InterruptPath | None = None) -> str:
    """Counts over time, one line per layer, and (with a traced path) one lane of events
    per layer below; where the flow stopped is marked."""
    f = Frame(samples, path, stall_at)
    c = SvgCanvas(f.width, f.height)
    draw_timeline(c, f, title)
    return c.render()


def timeline_png(samples: list[Sample], title: str, stall_at: float | None, out: Path,
                 path: InterruptPath | None = None) -> None:
    f = Frame(samples, path, stall_at)
    c = PngCanvas(f.width, f.height)
    draw_timeline(c, f, title)
    c.save(out)


def write_timeline(out: Path, samples: list[Sample], title: str, stall_at: float | None,
                   path: InterruptPath | None = None) -> Path:
    (out / "timeline.svg").write_text(timeline_svg(samples, title, stall_at, path))
    timeline_png(samples, title, stall_at, out / "timeline.png", path)
    return out / "timeline.png"

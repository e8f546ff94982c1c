"""The timeline of a run, drawn with matplotlib as PNG and SVG: counts per layer over time
and, below them, the interrupt path's events lane by lane (rig.trace.path) over the whole
run traced and zoomed, where the flow stopped marked. Text stays text in the SVG (it can be
searched), and the figure is cut to what is drawn, legends included."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

# Figures made and saved without pyplot: files only (its backends, GUI toolkits and figure
# registry are never loaded; importing it was half of the rig's start-up: docs/measurements.md).
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from rig.chain.verdict import Sample
from rig.trace.path import FORWARD, LANE_LABELS, LANES, InterruptPath, PathEvent

LAYERS = (("sent", "device: pushed", "#7f7f7f"), ("serviced", "consumer: serviced (bytes read)", "#2ca02c"),
          ("l2", "L2: device IRQ count", "#1f77b4"), ("l1", "L1: vfio-intx count", "#d62728"))
KIND_STYLE = (  # (legend, colour, kinds, (bottom, top) of a tick within its lane)
    ("carries it on (push, assert, notify/deliver, handler, serviced)", "#1f77b4", FORWARD, (0.1, 0.9)),
    ("held back by the controller", "#d62728", {"held", "reject"}, (0.05, 0.95)),
    ("EOI / unmask / enable", "#2ca02c", {"eoi", "unmask", "enable", "unmask-device", "reassert"}, (0.1, 0.5)),
    ("mask / disable", "#ff7f0e", {"mask", "disable"}, (0.1, 0.5)),
    ("other (line low, PQ reads, L2 count moved)", "#aaaaaa", None, (0.2, 0.4)),
)
STOPPED_FILL = "#fbdada"
ZOOM_S = 0.25       # the zoomed lanes: a quarter second around the stop (or the start)
WIDTH_IN, DPI = 11.0, 100
SVG_PARAMS = {"svg.fonttype": "none", "font.size": 9}


def kind_style(kind: str) -> tuple[str, float, float]:
    """(colour, bottom, top) of a tick within a lane, as fractions of its height."""
    for _, color, kinds, (low, high) in KIND_STYLE:
        if kinds is None or kind in kinds:
            return color, low, high
    raise AssertionError(kind)


@dataclass(frozen=True)
class Panel:
    """A time range of the path's lanes, and its heading."""
    t_from: float
    t_to: float
    heading: str


def panels(samples: list[Sample], path: InterruptPath | None, stall_at: float | None) -> list[Panel]:
    """The whole run traced, then a quarter second each: a STALL's last interrupt L1's
    handler took and the stop; a PASS's first interrupts. Not clamped at 0: L1's first
    events can sit just before the first push."""
    events = path.events if path else []
    if not events:
        return []
    t_min = min([0.0] + [e.t for e in events])
    t_max = max([s.t for s in samples] + [e.t for e in events] + [1.0])
    whole = Panel(t_min, t_max, "interrupt path, the whole run traced")

    def around(t: float, what: str, before: float = ZOOM_S / 2) -> Panel:
        lo = t - before
        return Panel(lo, lo + ZOOM_S, f"interrupt path, zoomed on {what} ({lo:.3f} s to {lo + ZOOM_S:.3f} s)")
    stop = stopped_at(path, stall_at)
    if stop is None:
        return [whole, around(ZOOM_S / 2, "the first interrupts")]
    zooms = [around(stop, "the stop")]
    handled = [e.t for e in events if e.kind == "handler" and e.t < stop - ZOOM_S / 2]
    if handled:
        zooms.insert(0, around(handled[-1], "the last interrupt L1 handled", before=0.05))
    return [whole, *zooms]


def stopped_at(path: InterruptPath | None, stall_at: float | None) -> float | None:
    """Where the flow stopped: the path's pending interrupt, else the verdict's (a STALL only)."""
    if stall_at is None:
        return None
    return path.pending_from if path and path.pending_from is not None else stall_at


def timeline_figure(samples: list[Sample], title: str, stall_at: float | None = None,
                    path: InterruptPath | None = None) -> Figure:
    lanes = panels(samples, path, stall_at)
    heights = [3.0] + [0.32 * len(LANES) + 0.2] * len(lanes)
    with rc_context(SVG_PARAMS):
        fig = Figure(figsize=(WIDTH_IN, sum(heights) + 1.6), dpi=DPI)
        FigureCanvasAgg(fig)        # its canvas: PNG, and text extents to lay out against
        axes = fig.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)
        fig.suptitle(title, x=0.01, ha="left", fontsize=13)
        draw_counts(axes[0][0], samples, stopped_at(path, stall_at))
        if lanes:       # the counts over the same seconds as the whole run's lanes below
            axes[0][0].set_xlim(lanes[0].t_from, lanes[0].t_to)
        for ax, panel in zip((row[0] for row in axes[1:]), lanes, strict=True):
            draw_lanes(ax, panel, path, stopped_at(path, stall_at))
        if lanes:
            fig.legend(handles=[Patch(color=c, label=label) for label, c, _, _ in KIND_STYLE],
                       loc="lower left", ncol=2, frameon=False, bbox_to_anchor=(0.0, 0.0))
        caption = explanation(path)
        if caption:
            fig.text(0.01, -0.01, "\n".join(textwrap.wrap(caption, 150)[:4]), va="top", ha="left")
        fig.tight_layout(rect=(0, 0.06 if lanes else 0, 1, 0.97))
    return fig


def draw_counts(ax: Axes, samples: list[Sample], stop: float | None) -> None:
    for attr, label, color in LAYERS:
        pts = [(s.t, getattr(s, attr)) for s in samples if getattr(s, attr) is not None]
        last = pts[-1][1] if pts else "n/a"
        if pts:
            ax.plot([t for t, _ in pts], [v for _, v in pts], color=color, lw=2, label=f"{label}: {last}")
        else:
            ax.plot([], [], color=color, lw=2, label=f"{label}: {last}")
    if stop is not None:
        ax.axvline(stop, color="black", ls="--", lw=1)
        ax.annotate("flow stopped", (stop, 1), xycoords=("data", "axes fraction"), xytext=(4, -12),
                    textcoords="offset points")
    ax.set_xlabel("seconds since the drive started")
    ax.set_ylabel("count")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    ax.grid(alpha=0.2)


def draw_lanes(ax: Axes, panel: Panel, path: InterruptPath | None, stop: float | None) -> None:
    stopped = path.stopped_layer if path else None
    events: list[PathEvent] = [e for e in (path.events if path else []) if panel.t_from <= e.t <= panel.t_to]
    n = len(LANES)
    for i, lane in enumerate(LANES):
        y = n - 1 - i                      # the device on top, the consumer at the bottom
        if lane == stopped:
            ax.axhspan(y, y + 1, color=STOPPED_FILL, zorder=0)
            ax.annotate("<- the flow stopped here", (1, y + 0.5), xycoords=("axes fraction", "data"),
                        xytext=(4, -3), textcoords="offset points", color="#d62728")
        ax.axhline(y, color="#dddddd", lw=0.8, zorder=0)
    by_style: dict[tuple[str, float, float], list[PathEvent]] = {}
    for e in events:
        by_style.setdefault(kind_style(e.kind), []).append(e)
    width = 0.8 if panel.t_to - panel.t_from > ZOOM_S else 1.6
    for (color, low, high), group in by_style.items():
        ys = [n - 1 - LANES.index(e.lane) for e in group]
        ax.vlines([e.t for e in group], [y + low for y in ys], [y + high for y in ys], colors=color, lw=width)
    if stop is not None and panel.t_from <= stop <= panel.t_to:
        ax.axvline(stop, color="#888888", ls="--", lw=1)
    ax.set_xlim(panel.t_from, panel.t_to)
    ax.set_ylim(0, n)
    ax.set_yticks([n - 1 - i + 0.5 for i in range(n)], [LANE_LABELS[lane] for lane in LANES])
    ax.tick_params(axis="y", length=0)
    ax.set_title(panel.heading, loc="left", fontsize=10)


def explanation(path: InterruptPath | None) -> str:
    if not path:
        return ""
    text = path.explanation or ""
    if path.deliveries_per_serviced is not None:
        text += (f"; L0's controller delivered the line {path.deliveries} times, "
                 f"{path.deliveries_per_serviced:g} per serviced interrupt")
    return text


def write_timeline(out: Path, samples: list[Sample], title: str, stall_at: float | None,
                   path: InterruptPath | None = None) -> Path:
    """timeline.png (what CI artifact viewers and report.html show) and timeline.svg."""
    fig = timeline_figure(samples, title, stall_at, path)
    with rc_context(SVG_PARAMS):
        fig.savefig(out / "timeline.png", bbox_inches="tight", pad_inches=0.15)
        fig.savefig(out / "timeline.svg", bbox_inches="tight", pad_inches=0.15)
    return out / "timeline.png"

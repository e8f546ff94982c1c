"""Two canvases with the same few drawing calls, so one drawing routine gives both the SVG
(sharp, searchable) and the PNG (what CI artifact viewers show inline)."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

Point = tuple[float, float]


class SvgCanvas:
    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                      'font-family="sans-serif" font-size="12">',
                      '<rect width="100%" height="100%" fill="white"/>']

    def line(self, pts: list[Point], color: str = "black", width: float = 1, dash: bool = False) -> None:
        style = ' stroke-dasharray="5,4"' if dash else ""
        if len(pts) == 2:
            (x1, y1), (x2, y2) = pts
            self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                              f'stroke="{color}" stroke-width="{width}"{style}/>')
        else:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            self.parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                              f'stroke-width="{width}"{style}/>')

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: str) -> None:
        self.parts.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" '
                          f'height="{y1 - y0:.1f}" fill="{fill}"/>')

    def text(self, x: float, y: float, s: str, anchor: str = "start", size: int = 12,
             color: str = "black") -> None:
        """y is the baseline."""
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
                          f'fill="{color}">{escape(s)}</text>')

    def render(self) -> str:
        return "\n".join(self.parts + ["</svg>"])

    def save(self, path: Path) -> None:
        path.write_text(self.render())


class PngCanvas:
    ANCHORS = {"start": "ls", "middle": "ms", "end": "rs"}

    def __init__(self, width: int, height: int):
        from PIL import Image, ImageDraw, ImageFont
        self.width, self.height = width, height
        self.img = Image.new("RGB", (width, height), "white")
        self.draw = ImageDraw.Draw(self.img)
        self._font = ImageFont.load_default
        self._fonts: dict[int, object] = {}

    def font(self, size: int):
        if size not in self._fonts:
            self._fonts[size] = self._font(size=size)
        return self._fonts[size]

    def line(self, pts: list[Point], color: str = "black", width: float = 1, dash: bool = False) -> None:
        if len(pts) == 1:
            x, y = pts[0]
            self.draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
        elif dash and len(pts) == 2 and pts[0][0] == pts[1][0]:
            x, (y0, y1) = pts[0][0], sorted((pts[0][1], pts[1][1]))
            for y in range(int(y0), int(y1), 9):
                self.draw.line([(x, y), (x, min(y + 5, y1))], fill=color, width=int(width))
        else:
            self.draw.line(pts, fill=color, width=max(1, int(width)))

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: str) -> None:
        self.draw.rectangle([x0, y0, x1, y1], fill=fill)

    def text(self, x: float, y: float, s: str, anchor: str = "start", size: int = 12,
             color: str = "black") -> None:
        self.draw.text((x, y), s, fill=color, font=self.font(size), anchor=self.ANCHORS[anchor])

    def save(self, path: Path) -> None:
        self.img.save(path)

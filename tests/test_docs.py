"""The README and docs/ say what exists: the README fits a screen or two and stands on its
own; the layout table (docs/architecture.md) lists every module of every package and
nothing that is not there; every file and section a page links to is there."""

import re
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.unit

README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MAX_README_LINES = 150


def layout_rows() -> dict[str, set[str]]:
    section = (ROOT / "docs" / "architecture.md").read_text().split("## Layout", 1)[1]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `([^`]+/)` \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = set(re.findall(r"`([A-Za-z_0-9]+)`", m.group(2)))
    return rows


def modules_on_disk() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for top in ("rig", "guest_images", "device_models"):
        for p in (ROOT / top).rglob("*.py"):
            if p.name != "__init__.py" and "__pycache__" not in p.parts:
                out.setdefault(str(p.parent.relative_to(ROOT)) + "/", set()).add(p.stem)
    return out


def anchors(page: Path) -> set[str]:
    """The section anchors GitHub makes of a page's headings."""
    out = set()
    for line in page.read_text().splitlines():
        if m := re.match(r"#+ (.*)", line):
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def test_the_layout_table_lists_every_module_and_nothing_else():
    assert layout_rows() == modules_on_disk()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_linked_file_and_section_exists(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)      # not in code blocks
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
        if target.startswith("http"):
            continue
        linked = (page.parent / target).resolve() if target else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in anchors(linked), f"{page.name}: {target}#{anchor}"


def test_the_readme_fits_a_screen_or_two_and_stands_on_its_own():
    """At most 150 lines (the manual is in docs/), and it names no file outside the
    repository (the spikes' notes live beside it, not in it)."""
    assert len(README.splitlines()) <= MAX_README_LINES
    assert not re.search(r"(^|[\s(\[])\.\./", README, re.M)

"""The README says what exists: its layout table lists every module of every package, and
nothing that is not there; every file it links to is in the repository."""

import re

import pytest
from conftest import ROOT

pytestmark = pytest.mark.unit

README = (ROOT / "README.md").read_text()


def layout_rows() -> dict[str, set[str]]:
    section = README.split("## Layout", 1)[1]
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


def test_the_layout_table_lists_every_module_and_nothing_else():
    assert layout_rows() == modules_on_disk()


def test_every_linked_file_exists():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_the_readme_stands_on_its_own():
    """It names no file outside the repository (the spikes' notes live beside it, not in it)."""
    assert not re.search(r"(^|[\s(\[])\.\./", README, re.M)

"""report.html in a real browser (Debian's Chromium, headless): a run's page and a matrix's,
made from a recorded run, render with every picture decoded, and reach nothing outside
the page. The screenshots are kept in test-artifacts/ (a CI artifact). About 10 s."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

from rig.chain.verdict import pending_since
from rig.reports.html import write_matrix_report, write_run_report
from rig.reports.result import RunResult
from rig.reports.timeline import write_timeline

pytestmark = pytest.mark.integration

RECORDED = ROOT / "tests" / "data" / "result-ppc64-xive-unfixed-userspace.json"
ARTIFACTS = ROOT / "test-artifacts"
BROWSER_S = 120


def chromium(*args: str) -> subprocess.CompletedProcess:
    if not shutil.which("chromium"):
        pytest.fail("chromium is missing: `make host` installs it (Debian's chromium package)")
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--virtual-time-budget=10000", *args], capture_output=True, text=True, timeout=BROWSER_S)


def recorded_run(out: Path) -> RunResult:
    out.mkdir(parents=True)
    r = RunResult.from_json(json.loads(RECORDED.read_text()))
    r.write(out)
    write_timeline(out, r.samples, f"{r.name}: {r.verdict.outcome}", pending_since(r.samples), r.interrupt_path)
    write_run_report(out, r)
    return r


def check_in_browser(page: Path, screenshot: str) -> str:
    html = page.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html), "the page reaches outside itself"
    dom = chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom.stdout)
    assert loaded, "the page's script did not run (no data-images-loaded): " + dom.stdout[:500]
    assert loaded.group(1) == loaded.group(2) != "0", f"pictures decoded: {loaded.group(0)}"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / screenshot
    shot.unlink(missing_ok=True)
    r = chromium(f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri())
    assert r.returncode == 0 and shot.stat().st_size > 20_000, r.stderr[-2000:]
    return dom.stdout


def test_a_runs_report_opens_with_its_timeline(tmp_path):
    r = recorded_run(tmp_path / "run")
    dom = check_in_browser(tmp_path / "run" / "report.html", "report-run.png")
    assert f"{r.name}: STALL" in dom and "stopped at L0 QEMU: interrupt controller" in dom
    assert '<a href="result.json">' in dom


def test_a_matrix_report_opens_with_every_cells_timeline(tmp_path):
    out = tmp_path / "matrix"
    cells = ["ppc64-xive-unfixed-userspace", "ppc64-xive-fixed-userspace"]
    for cell in cells:
        for n in (1, 2):
            recorded_run(out / cell / f"run{n}")
    results = [{"id": cell, "expected": "STALL", "why": "lazy disable swallows the next assertion",
                "verdicts": ["STALL", "STALL"] if i == 0 else ["STALL", "PASS"], "agreement": 1.0 if i == 0 else 0.5,
                "seconds": {"median": 30.0, "min": 29.0, "max": 31.0}, "deliveries_per_serviced": [None, None]}
               for i, cell in enumerate(cells)]
    write_matrix_report(out, results)
    dom = check_in_browser(out / "report.html", "report-matrix.png")
    assert dom.count("<img") == 4 and "1 of 2 cells agree" in dom
    assert 'class="disagree"' in dom

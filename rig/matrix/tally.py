"""A matrix run counted as a soak counts it: runs, wrong verdicts (a PASS or STALL other than
the cell's expected one), and ERRORs apart, each with its cause (tally.json, one line on the
terminal). A wrong verdict is what a user would act on; an ERROR is the machinery, which
`git bisect run` skips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rig.core.kinds import Outcome

TALLY = "tally.json"


def tally(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals and per-cell counts from the matrix's results (rig.matrix.summary)."""
    cells = []
    for r in results:
        verdicts = r["verdicts"]
        wrong = [d for d in r["disagreements"] if d["verdict"] != Outcome.ERROR]
        errors = [d for d in r["disagreements"] if d["verdict"] == Outcome.ERROR]
        cells.append({"id": r["id"], "expected": r["expected"], "runs": len(verdicts), "wrong": len(wrong),
                      "errors": len(errors), "median_s": (r["seconds"] or {}).get("median"),
                      "wrong_runs": [{"verdict": d["verdict"], "reason": d["reason"], "out": d["out"]}
                                     for d in wrong],
                      "error_runs": [{"reason": d["reason"], "out": d["out"]} for d in errors]})
    return {"runs": sum(c["runs"] for c in cells), "wrong": sum(c["wrong"] for c in cells),
            "errors": sum(c["errors"] for c in cells), "cells": cells}


def write_tally(out: Path, results: list[dict[str, Any]]) -> dict[str, Any]:
    t = tally(results)
    (out / TALLY).write_text(json.dumps(t, indent=1) + "\n")
    return t


def tally_line(t: dict[str, Any]) -> str:
    causes = sorted({e["reason"][:120] for c in t["cells"] for e in c["error_runs"]})
    line = f"{t['runs']} runs: {t['wrong']} wrong verdict(s), {t['errors']} ERROR(s)"
    return line + "".join(f"\n  ERROR: {c}" for c in causes)

"""A run's result as a type (RunResult), and its files: result.json (schema in
docs/result.schema.json, `schema_version` below) and junit.xml. `rig matrix` and the
timeline read results through RunResult.from_json, never by key paths."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rig.chain.facts import ChainFacts, KernelInputFacts, L0Facts, L1Facts, RunFacts
from rig.chain.verdict import Sample, Verdict, describe_stop
from rig.core.json_object import JsonObject
from rig.core.kinds import Outcome
from rig.core.spec import DriveSpec
from rig.core.targets import machine
from rig.reports.junit import JunitCase, write_junit
from rig.trace.path import InterruptPath

# 1: the first versioned result.json. Raise it when a field changes meaning or goes away
# (and say so in docs/result.schema.json); adding an optional field keeps it.
SCHEMA_VERSION = 1
RESULT_NAME = "result.json"


@dataclass
class RunResult:
    name: str                                  # the run's name (junit.xml, timeline title)
    verdict: Verdict
    seconds: float
    drive: DriveSpec
    facts: RunFacts
    samples: list[Sample] = field(default_factory=list)
    chain: ChainFacts | None = None            # None: it failed before the chain existed
    times: dict[str, float] = field(default_factory=dict)
    interrupt_path: InterruptPath | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> JsonObject:
        f = self.facts
        return {"schema_version": self.schema_version, "name": self.name,
                "verdict": self.verdict.to_json(), "seconds": round(self.seconds, 1),
                "drive": asdict(self.drive),
                "arch": f.arch, "machine": f.machine, "ic": f.ic, "consumer": f.consumer,
                "device": f.device, "device_reason": f.device_reason,
                "l0": asdict(f.l0) if f.l0 else None, "l1": asdict(f.l1) if f.l1 else None,
                "l1_kernel_input": asdict(f.l1_kernel_input) if f.l1_kernel_input else None,
                "samples": [asdict(s) for s in self.samples],
                "chain": asdict(self.chain) if self.chain else None,
                "times": self.times,
                "interrupt_path": self.interrupt_path.to_json() if self.interrupt_path else None}

    @classmethod
    def from_json(cls, d: JsonObject) -> RunResult:
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"result.json schema_version {d.get('schema_version')!r}, this rig reads "
                             f"{SCHEMA_VERSION}")
        facts = RunFacts(d["arch"], d["ic"], d["consumer"], d["device"], d["device_reason"],
                         L0Facts(**d["l0"]) if d["l0"] else None, L1Facts(**d["l1"]) if d["l1"] else None,
                         KernelInputFacts(**d["l1_kernel_input"]) if d["l1_kernel_input"] else None,
                         d.get("machine") or machine(d["arch"]).name)
        path = d["interrupt_path"]
        return cls(d["name"], Verdict.from_json(d["verdict"]), d["seconds"], DriveSpec(**d["drive"]), facts,
                   [Sample(**s) for s in d["samples"]], ChainFacts(**d["chain"]) if d["chain"] else None,
                   d["times"], InterruptPath.from_json(path) if path else None)

    @classmethod
    def load(cls, out: Path) -> RunResult:
        return cls.from_json(json.loads((out / RESULT_NAME).read_text()))

    def write(self, out: Path) -> Path:
        p = out / RESULT_NAME
        p.write_text(json.dumps(self.to_json(), indent=1))
        return p


def write_run_junit(out: Path, name: str, verdict: Verdict, seconds: float, log_hint: str) -> Path:
    """junit.xml of one run: a STALL or a FAIL fails, an ERROR is an error (the machinery, not
    the kernel)."""
    failed = verdict.outcome in (Outcome.STALL, Outcome.FAIL)
    case = JunitCase(name, seconds, output=f"{verdict.outcome}: {verdict.reason}",
                     failure=(describe_stop(verdict), verdict.reason) if failed else None,
                     error=(verdict.reason, log_hint) if verdict.outcome == Outcome.ERROR else None)
    # A scenario's steps are cases of their own, as they are KTAP subtests.
    steps = [JunitCase(f"{name}.{c.step}", failure=(f"{c.step}: {c.result}", c.what) if c.result != "ok" else None)
             for c in verdict.checks]
    return write_junit(out / "junit.xml", "intx-rig", "intx-rig", [case, *steps])

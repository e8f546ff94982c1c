"""result.json: a real one (recorded from a ppc64 XIVE run without the fix, fast mode)
against its schema, through its type and back, and its verdict replayed from its samples."""

import json

import jsonschema
import pytest
from conftest import RESULT_SCHEMA, ROOT

from rig.chain.verdict import final, judge
from rig.reports.result import SCHEMA_VERSION, RunResult

pytestmark = pytest.mark.unit

RECORDED = ROOT / "tests" / "data" / "result-ppc64-xive-unfixed-userspace.json"


@pytest.fixture
def recorded():
    return json.loads(RECORDED.read_text())


def test_the_schema_is_valid_and_takes_a_real_result(recorded):
    schema = json.loads(RESULT_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(recorded, schema)
    assert recorded["schema_version"] == SCHEMA_VERSION


def test_the_type_reads_it_and_writes_it_back_unchanged(recorded, tmp_path):
    r = RunResult.from_json(recorded)
    assert r.verdict.outcome == "STALL" and r.interrupt_path.stopped_layer == "l0_ic"
    assert r.facts.l1.vfio_intx_fix is False and r.chain.l1_device
    r.write(tmp_path)
    written = json.loads((tmp_path / "result.json").read_text())
    assert RunResult.from_json(written) == r
    # fields added since the recording (optional, same schema_version) come with their defaults
    grown = ("l0", "l1", "chain", "interrupt_path")
    assert {k: v for k, v in written.items() if k in recorded and k not in grown} == \
        {k: v for k, v in recorded.items() if k not in grown}
    for part in grown:
        assert recorded[part].items() <= written[part].items(), part


def test_the_verdict_replays_from_the_samples(recorded):
    r = RunResult.from_json(recorded)
    d = r.drive
    replayed = judge(r.samples, d.stall_window) or final(r.samples, d.stall_window, d.min_serviced)
    assert replayed == r.verdict


def test_a_result_of_another_schema_version_is_refused(recorded):
    with pytest.raises(ValueError, match="schema_version"):
        RunResult.from_json({**recorded, "schema_version": SCHEMA_VERSION + 1})


def test_the_schema_catches_a_wrong_verdict(recorded):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**recorded, "verdict": {**recorded["verdict"], "verdict": "MAYBE"}},
                            json.loads(RESULT_SCHEMA.read_text()))

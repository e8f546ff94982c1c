"""The chain's stage results (rig.chain.stages) and result.json's `chain` made from them:
recorded runs' facts go through the stages and come back the same, and a stage that did not
run leaves its fields empty."""

import json
from dataclasses import asdict, replace

import pytest
from conftest import ROOT

from rig.chain import stages as st
from rig.chain.facts import ChainFacts
from rig.chain.reader import ConsumerStarted
from rig.core.kinds import GuestStart
from rig.guests.snapshot import BadSnapshot

pytestmark = pytest.mark.unit

RECORDED = sorted((ROOT / "tests/data").glob("result-*.json"))


def stages_of(f: ChainFacts) -> st.ChainStages:
    """What each stage would have returned in the recorded run."""
    return st.ChainStages(
        l1=st.L1Started(GuestStart(f.l1_started), f.l1_snapshot, f.l1_restore_helper) if f.l1_started else None,
        binding=st.Binding.of_saved(f), l2_plan=st.L2Plan.of_saved(f),
        l2=st.L2Started(GuestStart(f.l2_started), f.l2_kernel) if f.l2_started else None,
        l2_boot_failures=tuple(f.l2_boot_failures), chain_snapshot=f.l2_snapshot or f.bound_snapshot,
        consumer=ConsumerStarted(f.consumer_device, f.consumer_tty, f.consumer_irq),
        tables=st.InterruptTables(f.l1_interrupts_at_end, f.l2_interrupts_at_end))


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_a_recorded_chain_goes_through_the_stages_unchanged(path):
    d = json.loads(path.read_text())
    facts = ChainFacts(**d["chain"])
    assert st.chain_facts(stages_of(facts), d["consumer"] == "l2") == facts


def test_no_stage_run_leaves_every_field_empty():
    assert st.chain_facts(st.ChainStages(), True) == ChainFacts()


def test_a_failed_l2_keeps_its_plan_and_why_it_failed():
    """An L2 that never came up: result.json still says how it was run and why each start failed."""
    plan = st.L2Plan("kvm", "L1 has /dev/kvm", ("qemu-system-ppc64", "-M", "pseries"))
    f = st.chain_facts(st.ChainStages(l2_plan=plan, l2_boot_failures=("hung", "crashed")), True)
    assert (f.l2_accel, f.l2_command, f.l2_boot_failures, f.l2_started) == \
        ("kvm", ["qemu-system-ppc64", "-M", "pseries"], ["hung", "crashed"], "")


def test_the_chain_snapshot_is_named_by_the_consumer():
    done = st.ChainStages(chain_snapshot="abc")
    assert (st.chain_facts(done, True).l2_snapshot, st.chain_facts(done, True).bound_snapshot) == ("abc", "")
    assert (st.chain_facts(done, False).l2_snapshot, st.chain_facts(done, False).bound_snapshot) == ("", "abc")


def test_a_restored_chain_takes_back_its_bind_and_l2_plan():
    """What a chain snapshot's metadata holds (asdict of ChainFacts) gives back the bind and
    L2's plan as they were at the save."""
    d = json.loads(RECORDED[0].read_text())
    saved = replace(ChainFacts(**d["chain"]), l2_accel="tcg", l2_accel_reason="asked", l2_command=["q", "-x"])
    back = ChainFacts(**json.loads(json.dumps(asdict(saved))))
    assert st.Binding.of_saved(back).bound.device == saved.l1_device
    assert st.L2Plan.of_saved(back) == st.L2Plan("tcg", "asked", ("q", "-x"))
    assert st.L2Plan.of_saved(replace(back, l2_accel="")) is None


def test_a_chain_snapshots_record_comes_back_and_a_strangers_is_refused():
    """The record beside a chain snapshot, read back from the cache (read as a stranger's):
    the rig's own gives back what was saved; none is an L1-alone snapshot; anything else
    proves the snapshot bad (BadSnapshot: it is removed, L1 boots)."""
    facts = ChainFacts(**json.loads(RECORDED[0].read_text())["chain"])
    saved = st.SavedChain(facts, "6.1.0-41-powerpc64le", "c000000002a1b2c0")
    assert st.SavedChain.from_meta(json.loads(json.dumps(saved.to_meta()))) == saved
    assert st.SavedChain.from_meta({}) is None
    for meta in ({"chain": {"l1_device": "x", "no_such_field": 1}}, {"chain": "not an object"},
                 {"chain": {**asdict(facts), "l2_accel": "warp"}}, {"chain": {**asdict(facts), "l1_device": 7}},
                 {**saved.to_meta(), "l2_kernel": ["list"]}):
        with pytest.raises(BadSnapshot, match="not the rig's"):
            st.SavedChain.from_meta(meta)

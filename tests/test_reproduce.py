"""The reproducer without guests: a run's options recorded and read back as the same cell,
the user's files checked by content, the script, and how a rerun is judged. A STALL
reproduced for real: tests/test_reproduce_e2e.py."""

import json
import subprocess
from pathlib import Path

import pytest

from rig.commands.rerun import RERUNS, judge
from rig.core import spec_json
from rig.core.errors import UserError
from rig.core.spec import DriveSpec, KernelUnderTestSpec, RunSpec
from rig.reports.reproducer import INPUTS, SCRIPT, Inputs, digest, kernel_files

CELL = spec_json.to_json(RunSpec("ppc64", l1_vfio="unfixed", consumer="userspace").validate())

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("spec", [
    RunSpec("ppc64", ic="xive", l1_vfio="unfixed", consumer="userspace", drive=DriveSpec(30, 4, 100)),
    RunSpec("ppc64", machine="powernv", snapshot=False, boot_timeout=600),
    RunSpec("x86_64", device="pci-serial", l2_accel="tcg", l1_smp=2),
], ids=["ppc64-fast", "powernv", "x86-nested"])
def test_the_recorded_spec_gives_the_same_cell(spec):
    again = spec_json.from_json(json.loads(json.dumps(spec_json.to_json(spec))), {})
    assert again.run_name(None) == spec.run_name(None)
    for field in ("arch", "l1_vfio", "consumer", "l2_accel", "l1_smp", "snapshot", "boot_timeout", "device"):
        assert getattr(again, field) == getattr(spec, field), field
    assert again.machine_profile == spec.machine_profile and again.interrupt_controller == spec.interrupt_controller
    assert (again.drive.duration, again.drive.stall_window, again.drive.pass_after) == \
        (spec.drive.duration, spec.drive.stall_window, spec.drive.pass_after)


def test_a_users_kernel_is_recorded_as_what_ran(tmp_path):
    built = tmp_path / "build" / "vmlinux"
    tree_spec = RunSpec("ppc64", kernel=KernelUnderTestSpec(build=object()))     # from a tree
    assert kernel_files(tree_spec, built, None) == {"kernel": built}
    deb = tmp_path / "linux-image.deb"
    assert kernel_files(RunSpec("x86_64", kernel=KernelUnderTestSpec(deb=deb)), None, None) == {"kernel-deb": deb}
    assert kernel_files(RunSpec("x86_64"), None, None) == {}


def inputs_with(tmp_path, files):
    return Inputs("x86_64-ioapic-fixed-l2", "STALL", CELL, ["--arch", "x86_64"], files, {}, "0", "now")


def test_a_users_file_missing_or_changed_is_named(tmp_path):
    k = tmp_path / "vmlinux"
    k.write_bytes(b"kernel")
    mods = tmp_path / "mods" / "kernel"
    mods.mkdir(parents=True)
    (mods / "vfio.ko").write_bytes(b"ko")
    files = {"kernel": {"path": str(k), "sha256": digest(k)},
             "modules": {"path": str(tmp_path / "mods"), "sha256": digest(tmp_path / "mods")}}
    inputs_with(tmp_path, files).check_files()                  # as recorded: fine
    (mods / "vfio.ko").write_bytes(b"rebuilt")
    with pytest.raises(UserError, match="--modules .*: changed since the run"):
        inputs_with(tmp_path, files).check_files()
    k.unlink()
    with pytest.raises(UserError, match="--kernel .*: the file the run used is not here"):
        inputs_with(tmp_path, files).check_files()


def test_the_script_reruns_its_own_directory_and_says_what(tmp_path):
    inputs = Inputs("ppc64-xive-unfixed-userspace", "STALL", CELL,
                    spec_json.to_argv(spec_json.from_json(CELL, {}), {"kernel": Path("/k/vmlinux")}),
                    {"kernel": {"path": "/k/vmlinux", "sha256": "ab" * 32}}, {}, "0.9", "2026-12-02T00:00:00Z")
    inputs.write(tmp_path)
    text = (tmp_path / SCRIPT).read_text()
    assert "rig run --arch ppc64 --machine pseries --ic xive --consumer userspace --l2-accel auto" in text
    assert "sha256 " + "ab" * 32 in text
    assert 'rerun "$(dirname "$0")"' in text
    assert subprocess.run(["sh", "-n", str(tmp_path / SCRIPT)]).returncode == 0
    assert Inputs.load(tmp_path) == inputs
    assert json.loads((tmp_path / INPUTS).read_text())["verdict"] == "STALL"


@pytest.mark.parametrize("verdicts,status,said", [
    (["STALL", "STALL"], 0, "reproduced: 2 of 2"),
    (["STALL", "PASS"], 1, "NOT reproduced"),
    (["ERROR"], 125, "NOT reproduced"),
])
def test_a_rerun_is_judged_against_the_recorded_verdict(tmp_path, capsys, verdicts, status, said):
    inputs = Inputs("cell", "STALL", CELL, [], {}, {"l0_qemu": "QEMU 11.1.3"}, "0", "now")
    run1 = tmp_path / "run-1"
    run1.mkdir()
    (run1 / "result.json").write_text(json.dumps({"l0": {"qemu": "/q/qemu-system-x86_64 QEMU 11.2.0"}, "l1": None}))
    assert judge(inputs, verdicts, tmp_path) == status
    out = capsys.readouterr().out
    assert said in out and "l0_qemu: 'QEMU 11.1.3' then, 'QEMU 11.2.0' now" in out
    assert json.loads((tmp_path / RERUNS).read_text())["matched"] is (status == 0)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(UserError, match="no inputs.json"):
        Inputs.load(tmp_path)
    with pytest.raises(UserError, match="no such results directory"):
        Inputs.load(tmp_path / "nothing")
    (tmp_path / INPUTS).write_text("{")
    with pytest.raises(UserError, match="not JSON"):
        Inputs.load(Path(tmp_path))


def test_the_runs_package_versions_go_with_it_to_another_cache(tmp_path):
    """The locks (exact Debian versions and sha256) travel in inputs.json: a cache without
    them gets them (its packages are then fetched at those versions); one that resolved the
    same set otherwise keeps its own and is told."""
    from rig.core.cache import Cache
    from rig.reports.reproducer import recorded_locks, seed_locks
    here = Cache(tmp_path / "here")
    here.write_json({"resolved_at": "then", "packages": [{"name": "linux-image", "version": "1"}]},
                    "locks", "guest-ppc64el-abc.json")
    inputs = Inputs("cell", "STALL", CELL, [], {}, {}, "0", "now", recorded_locks(here))
    elsewhere = Cache(tmp_path / "elsewhere")
    notes = seed_locks(inputs, elsewhere)
    assert notes == ["package set guest-ppc64el-abc: the run's versions, fetched as recorded"]
    assert elsewhere.read_json("locks", "guest-ppc64el-abc.json") == inputs.locks["guest-ppc64el-abc.json"]
    assert seed_locks(inputs, elsewhere) == []                   # the same now: nothing to say
    newer = Cache(tmp_path / "newer")
    newer.write_json({"resolved_at": "now", "packages": [{"name": "linux-image", "version": "2"}]},
                     "locks", "guest-ppc64el-abc.json")
    assert "resolved other versions" in seed_locks(inputs, newer)[0]
    assert newer.read_json("locks", "guest-ppc64el-abc.json")["packages"][0]["version"] == "2"


@pytest.mark.parametrize("spec", [
    RunSpec("ppc64", ic="xive", l1_vfio="unfixed", consumer="userspace", drive=DriveSpec(30, 4, 100)),
    RunSpec("ppc64", machine="powernv", snapshot=False, boot_timeout=600.5),
    RunSpec("x86_64", device="pci-serial", l2_accel="tcg", l1_smp=2, drive=DriveSpec(12.345678, 2.5, 0)),
], ids=["ppc64-fast", "powernv", "x86-nested"])
def test_the_command_line_of_a_spec_is_that_spec_to_rig_run(spec):
    """to_argv is the inverse of `rig run`'s parser: the matrix runs what it shows."""
    from rig.commands.cli import parser
    from rig.commands.run import spec_of
    again = spec_of(parser().parse_args(["run", *spec_json.to_argv(spec.validate(), {})]))
    assert spec_json.to_json(again) == spec_json.to_json(spec)


def test_a_path_with_a_newline_or_a_substitution_stays_in_its_comment(tmp_path):
    """A user's path is shown in reproduce.sh's comments: a newline in it must not start a
    command line, and nothing in it is ever expanded."""
    evil = "/k/vm\nlinux $(touch /tmp/pwned) `id`"
    inputs = Inputs("cell\nrm -rf /", "STALL", CELL, ["--arch", "ppc64", "--kernel", evil],
                    {"kernel": {"path": evil, "sha256": "ab" * 32}}, {}, "0.9\nid", "now")
    inputs.write(tmp_path)
    script = (tmp_path / SCRIPT).read_text()
    commands = [ln for ln in script.splitlines() if ln.strip() and not ln.startswith("#")]
    assert all("pwned" not in ln and "rm -rf" not in ln and "id" != ln.strip() for ln in commands), commands
    assert "\\n" in script and subprocess.run(["sh", "-n", str(tmp_path / SCRIPT)]).returncode == 0

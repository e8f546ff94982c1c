"""Coverage of vfio-pci's INTx code (--coverage): the build asks kbuild to profile only the
covered files, a run's counters are read by function, runs merge into the suite's figure, and
--coverage goes with --kernel-tree only. The real build and run: tests/test_kernel_tree_e2e.py."""

import json
from pathlib import Path

import pytest
from conftest import run_rig

from rig.chain import gcov
from rig.core.targets import profile
from rig.kernel import kconfig
from rig.kernel.build import default_build_dir
from rig.kernel.under_test import KernelUnderTest
from rig.reports import coverage
from rig.reports.coverage import FunctionLines

pytestmark = pytest.mark.unit
DATA = Path(__file__).parent / "data"

# The shape of gcc 12's `gcov --json-format --stdout` (trimmed): lines carry their function.
REPORT = {"format_version": "1", "gcc_version": "12.2.0", "files": [
    {"file": "../drivers/vfio/pci/vfio_pci_intrs.c", "functions": [], "lines": [
        {"line_number": 104, "count": 3, "function_name": "__vfio_pci_intx_mask", "unexecuted_block": False},
        {"line_number": 130, "count": 0, "function_name": "__vfio_pci_intx_mask", "unexecuted_block": True},
        {"line_number": 226, "count": 9, "function_name": "vfio_intx_handler", "unexecuted_block": False},
        {"line_number": 400, "count": 5, "function_name": "vfio_msihandler", "unexecuted_block": False},
        {"line_number": 226, "count": 9, "function_name": "vfio_intx_handler", "unexecuted_block": False}]},
    {"file": "../include/linux/eventfd.h", "functions": [], "lines": [
        {"line_number": 40, "count": 1, "function_name": "vfio_intx_inlined_elsewhere"}]}]}


def test_only_the_covered_files_are_profiled_and_in_a_build_directory_of_their_own(tmp_path):
    prof = profile("ppc64")
    plain = kconfig.make_command(tmp_path, tmp_path / "b", prof)
    covered = kconfig.make_command(tmp_path, tmp_path / "b", prof, coverage=True)
    assert covered[:len(plain)] == plain and covered[len(plain):] == ["GCOV_PROFILE_vfio_pci_intrs.o=y"]
    assert "CONFIG_GCOV_KERNEL=y" in kconfig.plan("minimal", prof, coverage=True).overlay_text
    assert kconfig.plan("minimal", prof).digest != kconfig.plan("minimal", prof, coverage=True).digest
    tree = tmp_path / "linux"
    tree.mkdir()
    assert default_build_dir(tmp_path, tree, prof, coverage=True).name == ".intx-rig-ppc64-gcov"
    assert default_build_dir(tmp_path, tree, prof).name == ".intx-rig-ppc64"


def test_a_run_s_lines_are_read_by_function_and_only_the_intx_ones_count():
    fns = coverage.intx_functions(REPORT, "drivers/vfio/pci/vfio_pci_intrs.c")
    assert fns == [FunctionLines("__vfio_pci_intx_mask", (104, 130), (104,)),
                   FunctionLines("vfio_intx_handler", (226,), (226,))]
    assert fns[0].missed == (130,)
    assert coverage.describe(fns) == "coverage: 2 of 3 lines of vfio_pci_intrs.c's INTx functions reached (67 %)"


def test_runs_merge_into_every_line_some_run_reached(tmp_path):
    a = [FunctionLines("f", (1, 2, 3), (1,)), FunctionLines("g", (9,), ())]
    b = [FunctionLines("f", (1, 2, 3), (3,))]
    suite = coverage.merged([a, b])
    assert suite == [FunctionLines("f", (1, 2, 3), (1, 3)), FunctionLines("g", (9,), ())]
    assert coverage.describe(suite).endswith("(50 %); none of g")
    coverage.write(tmp_path, suite, ["run1", "run2"])
    written = json.loads((tmp_path / coverage.COVERAGE_NAME).read_text())
    assert written["reached"] == 2 and written["lines"] == 4 and written["functions"][0]["missed"] == [2]
    assert coverage.load(tmp_path) == suite


def test_a_kernel_counts_as_covered_only_with_gcov_and_the_notes_beside_its_config(tmp_path):
    build = tmp_path / "build"
    (build / "drivers/vfio/pci").mkdir(parents=True)
    (build / ".config").write_text("CONFIG_GCOV_KERNEL=y\n")

    def kernel(gcov_on):
        return KernelUnderTest(build / "vmlinux", "6.12", "Linux version 6.12", None,
                               {"CONFIG_GCOV_KERNEL": "y"} if gcov_on else {}, str(build / ".config"), "--kernel")
    assert gcov.build_dir_of(kernel(True)) is None            # no notes yet
    (build / "drivers/vfio/pci/vfio_pci_intrs.gcno").write_bytes(b"oncg")
    assert gcov.build_dir_of(kernel(True)) == build
    assert gcov.build_dir_of(kernel(False)) is None and gcov.build_dir_of(None) is None


def test_coverage_goes_with_a_kernel_tree():
    r = run_rig("run", "--arch", "ppc64", "--coverage")
    assert r.returncode == 2 and r.stderr.strip() == "rig: error: --coverage goes with --kernel-tree"


def test_a_recorded_gcov_report_of_a_real_run_reads_into_the_intx_functions():
    """gcc 12's report of vfio_pci_intrs.c after a masked-pending run on q35 (Debian's
    6.12.95 tree, --coverage, 2026-12-07): the INTx functions, each with its lines."""
    doc = json.loads((DATA / "gcov-vfio_pci_intrs-x86-masked-pending.json").read_text())
    fns = {f.name: f for f in coverage.intx_functions(doc, "drivers/vfio/pci/vfio_pci_intrs.c")}
    assert {"vfio_intx_handler", "vfio_intx_enable", "vfio_intx_disable", "__vfio_pci_intx_mask",
            "vfio_pci_intx_unmask_handler"} <= set(fns)
    assert not [n for n in fns if not coverage.INTX_FUNCTION.match(n)]
    assert fns["vfio_intx_handler"].reached and not fns["vfio_intx_disable"].reached   # the consumer still runs
    assert coverage.totals(list(fns.values())) == (53, 107)

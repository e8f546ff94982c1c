"""Building L1's kernel from a source tree, without building one: how the configuration is
put together (rig.kernel.kconfig), when a build directory's configuration is kept, where
build directories go, and the user's kernel in the matrix. The real builds are in
tests/test_kernel_tree_e2e.py."""

import json
import os
from pathlib import Path

import pytest

from rig.commands.kernel import tree_options
from rig.core.errors import UserError
from rig.core.progress import Progress
from rig.core.spec import DriveSpec, KernelBuildSpec, KernelUnderTestSpec, RunSpec
from rig.core.targets import PROFILES, kernel_options
from rig.host.needs import kernel_build_needs
from rig.host.profiles import host_profile
from rig.kernel import kconfig
from rig.kernel.build import CONFIG_RECORD, KernelBuild, KernelBuildError, default_build_dir
from rig.kernel.ccache import CacheCounts, CompilerCache, Misses
from rig.kernel.under_test import parse_config
from rig.matrix import cells as matrix_cells
from rig.matrix.summary import CellSummary, RunOutcome, table

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("arch", PROFILES)
def test_minimal_plan_is_allnoconfig_with_base_then_chain_fragments(arch):
    prof = PROFILES[arch]
    p = kconfig.plan("minimal", prof)
    assert (p.target, p.pre_targets) == ("allnoconfig", ())
    assert "# CONFIG_MODULES is not set" in p.base_text
    asked = kconfig.wanted(p)
    # the chain's needs and the trace's are all asked for, on top of the base
    for opt in (*kernel_options(prof), prof.kvm_config, "CONFIG_KPROBE_EVENTS", "CONFIG_KALLSYMS"):
        assert asked.get(opt) == "y", opt
    assert "CONFIG_MODULES" not in asked        # `is not set` asks for nothing to be on


def test_defconfig_plan_runs_the_arch_defconfig_first():
    p = kconfig.plan("defconfig", PROFILES["ppc64"])
    assert (p.pre_targets, p.target, p.base_text) == (("ppc64le_defconfig",), "alldefconfig", "")
    assert "CONFIG_MODULES" not in kconfig.wanted(p)      # defconfig's own choice stays


def test_file_plan_puts_the_fragments_after_the_users_config(tmp_path):
    mine = tmp_path / "my.config"
    mine.write_text("CONFIG_VFIO=n\nCONFIG_LOCALVERSION=\"-mine\"\n")
    p = kconfig.plan(str(mine), PROFILES["x86_64"])
    allconfig = p.base_text + "\n" + p.overlay_text
    # kconfig takes the last assignment: the chain's CONFIG_VFIO=y wins over the user's n
    assert parse_config(allconfig)["CONFIG_VFIO"] == "y"
    assert parse_config(allconfig)["CONFIG_LOCALVERSION"] == "-mine"


def test_the_digest_follows_every_input(tmp_path):
    prof = PROFILES["x86_64"]
    mine = tmp_path / "my.config"
    mine.write_text("CONFIG_A=y\n")
    first = kconfig.plan(str(mine), prof).digest
    assert kconfig.plan(str(mine), prof).digest == first
    mine.write_text("CONFIG_A=n\n")
    assert kconfig.plan(str(mine), prof).digest != first
    digests = {kconfig.plan(c, p).digest for c in ("minimal", "defconfig") for p in PROFILES.values()}
    assert len(digests) == 4


def test_an_unreadable_config_file_is_bad_input(tmp_path):
    with pytest.raises(UserError, match="--config"):
        kconfig.plan(str(tmp_path / "missing.config"), PROFILES["x86_64"])


def fake_tree(tmp_path):
    tree = tmp_path / "linux"
    tree.mkdir(parents=True)
    (tree / "Kconfig").write_text("")
    (tree / "Makefile").write_text("")
    return tree


def test_an_unchanged_configuration_is_kept(tmp_path):
    """Kept: no make runs (the tree here has no kbuild, so running it would fail)."""
    tree, bd = fake_tree(tmp_path), tmp_path / "build"
    bd.mkdir()
    b = KernelBuild(KernelBuildSpec(tree), PROFILES["ppc64"], bd, Progress(quiet=True), CompilerCache(tmp_path))
    (bd / ".config").write_text("CONFIG_VFIO=y\n")
    (bd / CONFIG_RECORD).write_text(json.dumps({"digest": b.plan.digest}))
    assert b._configure() is False


@pytest.mark.parametrize("record", [None, {"digest": "an older plan"}])
def test_a_changed_or_unrecorded_configuration_is_made_again(tmp_path, record):
    tree, bd = fake_tree(tmp_path), tmp_path / "build"
    bd.mkdir()
    (bd / ".config").write_text("CONFIG_VFIO=y\n")
    if record:
        (bd / CONFIG_RECORD).write_text(json.dumps(record))
    b = KernelBuild(KernelBuildSpec(tree), PROFILES["ppc64"], bd, Progress(quiet=True), CompilerCache(tmp_path))
    with pytest.raises(KernelBuildError, match="configuring the kernel failed"):
        b._configure()      # it ran make on this tree, which has no kbuild
    assert not (bd / CONFIG_RECORD).exists(), "a failed configuration must not be recorded as made"


def test_a_build_failure_is_125_for_git_bisect():
    assert KernelBuildError.exit_status == 125


def test_build_directories_are_per_tree_and_arch(tmp_path, monkeypatch):
    """In the tree, one level down (kbuild then names the sources `../`: the same command
    lines in any tree); in the cache where the tree cannot be written."""
    a, b = fake_tree(tmp_path / "a"), fake_tree(tmp_path / "b")
    x86, ppc = PROFILES["x86_64"], PROFILES["ppc64"]
    assert default_build_dir(tmp_path, a, x86) == default_build_dir(tmp_path, a / "." / "", x86)
    dirs = {default_build_dir(tmp_path, t, p) for t in (a, b) for p in (x86, ppc)}
    assert len(dirs) == 4 and all(d.parent in (a, b) and d.name.startswith(".") for d in dirs)
    KernelBuildSpec(a, default_build_dir(tmp_path, a, ppc)).validate()      # hidden: accepted
    monkeypatch.setattr(os, "access", lambda path, mode: False)            # a tree of someone else's
    assert default_build_dir(tmp_path, a, x86).parent == tmp_path / "kernel-builds"


def test_build_spec_rejects_a_build_dir_inside_the_tree_unless_hidden(tmp_path):
    tree = fake_tree(tmp_path)
    with pytest.raises(UserError, match="inside the source tree"):
        KernelBuildSpec(tree, tree / "out").validate()
    KernelBuildSpec(tree, tree / ".rig-build").validate()     # git ignores it (Linux's .gitignore)


def test_the_run_hint_builds_the_same_kernel(tmp_path):
    """rig kernel build's "or: rig run ..." line names the build directory and configuration
    it used, so following it reuses that build instead of making the default one."""
    tree = tmp_path / "linux"
    assert tree_options(KernelBuildSpec(tree)) == ["--kernel-tree", str(tree)]
    assert tree_options(KernelBuildSpec(tree, tmp_path / "b", str(tmp_path / "my.config"))) == [
        "--kernel-tree", str(tree), "--build-dir", str(tmp_path / "b"), "--config", str(tmp_path / "my.config")]


@pytest.mark.parametrize("arch", PROFILES)
def test_a_kernel_build_needs_the_arch_compiler_and_kbuild_tools(arch):
    host = host_profile("x86_64")
    needs = {n.package for n in kernel_build_needs(host, PROFILES[arch])}
    assert {"make", "flex", "bison", "bc", "libelf-dev", "libssl-dev", "gcc-12", "ccache"} <= needs
    assert (arch == "ppc64") == ("gcc-12-powerpc64le-linux-gnu" in needs)


def test_run_names_say_what_was_read_in_a_users_kernel(tmp_path):
    k = tmp_path / "bzImage"
    k.write_bytes(b"x")
    own = RunSpec("x86_64", kernel=KernelUnderTestSpec(kernel=k))
    assert own.run_name(True) == "x86_64-q35-ioapic-own-kernel-with-fix-l2"
    assert own.run_name(False) == "x86_64-q35-ioapic-own-kernel-without-fix-l2"
    assert own.run_name(None) == own.name == "x86_64-q35-ioapic-own-kernel-l2"
    # Debian's variants keep their names whatever is read
    assert RunSpec("ppc64", l1_vfio="unfixed").run_name(True) == "ppc64-pseries-xive-unfixed-l2"


def test_every_cell_of_a_users_kernel_expects_pass(tmp_path):
    own = matrix_cells.all_cells(own={})
    assert {c.vfio for c in own} == {"own"}
    assert {c.arch for c in own} == set(PROFILES)
    assert {c.expectation().verdict for c in own if c.scenario == "flow"} == {"PASS"}
    # Beyond the flow, what QEMU's XIVE does to a masked LSI holds for every kernel.
    assert {c.expectation().verdict for c in own if c.scenario == "masked-pending" and c.ic == "xive"
            and c.intx_path == "non-2.3"} == {"STALL"}
    # the same cells as Debian's variants, one variant instead of two
    assert len(own) * 2 == len(matrix_cells.all_cells())
    k = tmp_path / "vmlinux"
    k.write_bytes(b"x")
    cell = next(c for c in matrix_cells.all_cells(own={"ppc64": matrix_cells.OwnKernel(str(k))}) if c.arch == "ppc64")
    args = cell.run_args(DriveSpec(60, 5, 100))
    assert args[args.index("--kernel") + 1] == str(k) and "--l1-vfio" not in args and "--modules" not in args


def test_the_matrix_shows_the_fix_state_beside_each_verdict():
    cell = matrix_cells.Cell("ppc64", "pseries", "xive", "own", "pci-serial", "userspace")
    runs = [RunOutcome("STALL", 30.0, "/r1", "stalled", explanation="XIVE: pending, no EOI", vfio_intx_fix=False)]
    summary = CellSummary(cell, runs)
    r = summary.to_json()
    assert r["vfio_intx_fix"] == [False] and r["agreement"] == 0.0
    assert r["disagreements"][0]["explanation"] == "XIVE: pending, no EOI"
    assert table([summary]).splitlines()[1].endswith("no fix")


def broken_tree(tmp_path, failing_target: str):
    """A tree whose kbuild is a stand-in Makefile: configuration writes a .config with what
    the chain needs; failing_target fails as a compile error would."""
    tree = fake_tree(tmp_path)
    prof = PROFILES["ppc64"]
    (tree / "fake.config").write_text("".join(f"{o}=y\n" for o in kernel_options(prof)))
    (tree / "Makefile").write_text(
        "allnoconfig:\n\tmkdir -p $(O)/include/config && cp fake.config $(O)/.config\n"
        f"{failing_target}:\n\t@echo 'drivers/vfio/pci/vfio_pci_intrs.c:308:2: error: broken on purpose'; exit 2\n"
        "%:\n\t@true\n")
    return tree


@pytest.mark.parametrize("failing, said", [("allnoconfig", "configuring the kernel failed"),
                                           ("vmlinux", "the kernel did not build")])
def test_a_tree_that_does_not_build_is_skipped_by_git_bisect(tmp_path, failing, said):
    """Exit 125 with --bisect and without: `git bisect run` skips such a commit."""
    from conftest import run_rig

    from rig.host.needs import missing_for_kernel_build
    if missing_for_kernel_build(PROFILES["ppc64"]):
        pytest.skip("the host lacks what a ppc64 kernel build needs (make host installs it)")
    tree = broken_tree(tmp_path, failing)
    r = run_rig("--bisect", "kernel", "build", "--arch", "ppc64", "--tree", str(tree), "--build-dir",
                str(tmp_path / "build"), cache=tmp_path / "cache", timeout=120)
    assert r.returncode == 125, r.stderr
    assert said in r.stderr and "Traceback" not in r.stderr, r.stderr
    if failing == "vmlinux":
        assert "error: broken on purpose" in r.stderr and "build.log" in r.stderr
        assert "error: broken on purpose" in (tmp_path / "build/build.log").read_text()


def test_ccache_counts_one_builds_hits_and_misses_from_its_stats_log():
    """ccache 4.7's stats_log: a `# file` line, then the counters that call moved."""
    log = ("# /t/a.c\ncache_miss\ndirect_cache_miss\nlocal_storage_miss\n"
           "# /t/b.c\ndirect_cache_hit\nlocal_storage_hit\n"
           "# /t/c.c\npreprocessed_cache_hit\ndirect_cache_miss\n")
    counts = CacheCounts.from_stats_log(log)
    assert (counts.hits, counts.misses) == (2, 1)
    assert counts.describe() == "2 of 3 compilations from ccache (67%)"
    assert CacheCounts.from_stats_log("").describe() == "no compilation went through ccache"


def test_a_low_hit_rate_says_where_the_misses_were_and_what_could_not_be_cached():
    """A second tree that differs in a few files misses those; one built with another
    configuration misses nearly everything: the summary says which, from the stats_log."""
    few = "".join(f"# ../drivers/vfio/pci/f{i}.c\ncache_miss\n" for i in range(15))
    few += "".join(f"# ../kernel/irq/g{i}.c\ndirect_cache_hit\n" for i in range(10))
    few += "# ../arch/x86/a.c\ncache_miss\n# /dev/null\ncalled_for_link\n# /dev/null\npreprocessor_error\n"
    counts, misses = CacheCounts.from_stats_log(few), Misses.from_stats_log(few)
    said = misses.explain(counts)
    assert said.startswith("16 missed, these sources, or a header they include, differ from every build before")
    assert "most under drivers/vfio 15, arch/x86 1" in said
    assert "not cacheable: called_for_link 1, preprocessor_error 1" in said
    everything = "".join(f"# ../fs/ext4/h{i}.c\ncache_miss\n" for i in range(30))
    said = Misses.from_stats_log(everything).explain(CacheCounts.from_stats_log(everything))
    assert "nearly every file: the configuration, a header most files include or the compiler" in said
    good = "".join(f"# ../fs/h{i}.c\ndirect_cache_hit\n" for i in range(30)) + "# ../fs/x.c\ncache_miss\n"
    assert Misses.from_stats_log(good).explain(CacheCounts.from_stats_log(good)) == ""


def test_ccache_totals_read_print_stats():
    text = "cache_miss\t10\ndirect_cache_hit\t85\npreprocessed_cache_hit\t5\ncache_size_kibibyte\t2048\n"
    assert CacheCounts.from_print_stats(text) == CacheCounts(90, 10)


def test_ccache_paths_are_relative_to_the_tree_and_build_dirs_parent(tmp_path):
    """The same sources unpacked in another temporary directory must hit: base_dir is their
    common parent; never /, which would rewrite the system headers' paths too."""
    store = CompilerCache(tmp_path / "cache")
    env = store.environment(tmp_path / "linux", tmp_path / "build" / "ppc64")
    assert env["CCACHE_BASEDIR"] == str(tmp_path) and env["CCACHE_DIR"] == str(tmp_path / "cache" / "ccache")
    assert env["CCACHE_COMPILERCHECK"] == "content"     # a changed compiler is a miss
    assert env["CCACHE_STATSLOG"] == str(tmp_path / "build" / "ppc64" / "rig-ccache.log")
    assert "CCACHE_BASEDIR" not in store.environment(tmp_path / "linux", tmp_path.parents[-1] / "elsewhere")


def test_the_build_and_its_configuration_name_the_same_compiler():
    """kbuild reconfigures and recompiles everything when CC changes between the two."""
    make = kconfig.make_command(Path("/t"), Path("/b"), PROFILES["ppc64"], CompilerCache(Path("/c")).cc_prefix)
    assert "CC=ccache powerpc64le-linux-gnu-gcc-12" in make and "HOSTCC=ccache gcc-12" in make

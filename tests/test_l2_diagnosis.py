"""Reading where a hung L2's vCPU is from HMP `info registers` (the texts are QEMU's)."""

import pytest

from rig.guests.l2 import vcpu_pc

pytestmark = pytest.mark.unit

# x86, long mode: the L2 that hung in boot during a matrix run (spinning on jiffies_lock)
X86_64 = """CPU#0
RAX=0000000000000001 RBX=ffffffffb2407a40 RCX=000000000000080b RDX=0000000000000000
RSI=0000000000000001 RDI=ffffffffb2407a40 RBP=00000000679bce85 RSP=ff767acb00003e80
RIP=ffffffffb14e0a88 RFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
"""
# x86 at reset (a QEMU started with -S)
X86_RESET = """CPU#0
EAX=00000000 EBX=00000000 ECX=00000000 EDX=00000663
EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
"""
# POWER (target/ppc/cpu_init.c: "NIP " TARGET_FMT_lx "   LR " ...)
PPC64 = """NIP c0000000000f3a2c   LR c0000000000f39f0 CTR 0000000000000000 XER 0000000020000000 CPU#0
MSR 8000000000009033 HID0 0000000000000000  HF 6c000004 iidx 3 didx 3
"""


@pytest.mark.parametrize("text, expected", [
    (X86_64, ("RIP", 0xffffffffb14e0a88)),
    (X86_RESET, ("EIP", 0xfff0)),
    (PPC64, ("NIP", 0xc0000000000f3a2c)),
    ("", None),
])
def test_program_counter_of_the_first_vcpu(text, expected):
    assert vcpu_pc(text) == expected


def test_l2_qemu_is_started_in_a_session_of_its_own_and_followed():
    """So that it outlives the SSH connection that started it (an L1 saved with L2 in it
    comes back with L2 running); its exit status ends up on its console."""
    import subprocess

    from rig.core.targets import PROFILES
    from rig.guests.l2 import CONSOLE_FILE, l2_command, launch_script
    cmd = l2_command(PROFILES["ppc64"], "kvm", "0000:00:01.0")
    assert f"file,id=con,path={CONSOLE_FILE},append=on" in cmd and "stdio" not in " ".join(cmd)
    script = launch_script(cmd + ["-pidfile", "/run/l2-qemu.pid"])
    assert script.startswith(f": > {CONSOLE_FILE}; setsid sh -c ")
    assert script.endswith(f"exec tail -n +1 -f {CONSOLE_FILE}")
    assert 'echo "rig-l2-exit: $?"' in script
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0


def test_l2_qemu_is_sandboxed_only_where_l1_s_kernel_has_seccomp_filters(tmp_path):
    """QEMU offers -sandbox only on a kernel with seccomp filters (the rig's minimal L1
    kernel has none): the launch script adds it only where /proc/self/status says so.
    Run with a stand-in QEMU that prints its arguments."""
    import subprocess

    from rig.core.targets import PROFILES
    from rig.guests.l2 import l2_command, launch_script
    cmd = l2_command(PROFILES["x86_64"], "kvm", "0000:00:01.0")
    fake = tmp_path / "qemu"
    fake.write_text('#!/bin/sh\necho "$@" >&2\n')
    fake.chmod(0o755)
    console = tmp_path / "console"
    script = launch_script([str(fake), *cmd[1:]]).replace("/run/l2-console.log", str(console))
    inner = script.split("setsid sh -c ", 1)[1].rsplit(" < /dev/null", 1)[0]
    subprocess.run(["sh", "-c", f"sh -c {inner}"], check=True, timeout=30)
    has_filters = "Seccomp_filters:" in open("/proc/self/status").read()
    assert (" -sandbox on,obsolete=deny," in console.read_text()) is has_filters
    assert "rig-l2-exit: 0" in console.read_text()
    assert "-sandbox" in script and "Seccomp_filters" in script

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

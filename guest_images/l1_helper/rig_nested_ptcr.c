// SPDX-License-Identifier: GPL-2.0
/*
 * rig_nested_ptcr: registers kvm-hv's nested partition table with the parent hypervisor
 * once more (H_SET_PARTITION_TABLE), exactly as kvm-hv's own init did.
 *
 * Why: QEMU's pseries machine keeps the table's address (the PTCR an L1 hypervisor
 * registers) outside its migration stream. An L1 restored from a snapshot still has
 * kvm-hv loaded and its table in memory, but L0 has forgotten where it is, so every
 * H_ENTER_NESTED fails with H_NOT_AVAILABLE. The intx-rig loads this module in L1 right
 * after such a restore, before L2 runs again; it touches nothing else (no IRQ, PCI or
 * VFIO code), and it is never loaded in a run that boots its guests.
 *
 * partition_tb_var: the address of kvm-hv's static pseries_partition_tb pointer, as
 * /proc/kallsyms gives it (the module cannot look a symbol up itself).
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <asm/hvcall.h>
#include <asm/kvm_host.h>
#include <asm/page.h>

static unsigned long partition_tb_var;
module_param(partition_tb_var, ulong, 0);
MODULE_PARM_DESC(partition_tb_var, "address of kvm_hv's pseries_partition_tb (from /proc/kallsyms)");

static int __init rig_nested_ptcr_init(void)
{
	/* kvmhv_nested_init(): one 16-byte entry per nested guest, at least 4 KiB */
	unsigned long order = KVM_MAX_NESTED_GUESTS_SHIFT + 4;
	unsigned long ptcr;
	void *table;
	long rc;

	if (!partition_tb_var)
		return -EINVAL;
	table = *(void **)partition_tb_var;
	if (!table)
		return -ENODEV;		/* kvm-hv runs nested v2, or never set a table up */
	if (order < 12)
		order = 12;
	ptcr = __pa(table) | (order - 12);
	rc = plpar_hcall_norets(H_SET_PARTITION_TABLE, ptcr);
	pr_info("rig_nested_ptcr: H_SET_PARTITION_TABLE(%#lx) returned %ld\n", ptcr, rc);
	return rc == H_SUCCESS ? 0 : -EIO;
}

static void __exit rig_nested_ptcr_exit(void)
{
}

module_init(rig_nested_ptcr_init);
module_exit(rig_nested_ptcr_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("intx-rig: register kvm-hv's nested partition table again after a restore");

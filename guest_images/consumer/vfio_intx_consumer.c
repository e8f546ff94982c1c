/*
 * intx-rig's userspace VFIO consumer (fast mode, no L2): owns the 16550 UART of a
 * pci-serial device through vfio-pci in L1 and services its INTx the way a VMM does:
 * wait on the trigger eventfd, read the data (which deasserts the line), then UNMASK.
 *
 * Usage: vfio_intx_consumer <pci address> <iommu group>
 * Prints "READER dev=... tty=vfio irq=..." once, then one "R" line per byte read, which
 * is what the rig's drive loop counts (the same protocol as the reader in L2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

enum { UART_RBR = 0, UART_IER = 1, UART_IIR = 2, UART_LCR = 3, UART_MCR = 4, UART_LSR = 5 };

static int dev;
static off_t bar0;

static void die(const char *what)
{
	fprintf(stderr, "vfio_intx_consumer: %s: %s\n", what, strerror(errno));
	exit(2);
}

static uint8_t uart_read(int reg)
{
	uint8_t v;
	if (pread(dev, &v, 1, bar0 + reg) != 1)
		die("BAR0 read");
	return v;
}

static void uart_write(int reg, uint8_t v)
{
	if (pwrite(dev, &v, 1, bar0 + reg) != 1)
		die("BAR0 write");
}

static void set_irqs(uint32_t flags, int fd)
{
	char buf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *set = (struct vfio_irq_set *)buf;

	set->argsz = sizeof(buf);
	set->flags = flags;
	set->index = VFIO_PCI_INTX_IRQ_INDEX;
	set->start = 0;
	set->count = 1;
	memcpy(set->data, &fd, sizeof(int));
	if (ioctl(dev, VFIO_DEVICE_SET_IRQS, set))
		die(flags & VFIO_IRQ_SET_ACTION_UNMASK ? "INTx unmask" : "INTx trigger eventfd");
}

static void set_iommu(int container)
{
	/* type1 on x86, the sPAPR TCE backend on pseries: whichever the kernel offers. */
	static const int types[] = { VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_IOMMU,
				     VFIO_SPAPR_TCE_v2_IOMMU, VFIO_SPAPR_TCE_IOMMU };
	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (ioctl(container, VFIO_CHECK_EXTENSION, types[i]) <= 0)
			continue;
		if (ioctl(container, VFIO_SET_IOMMU, types[i]))
			die("VFIO_SET_IOMMU");
		if (types[i] == VFIO_SPAPR_TCE_IOMMU)
			ioctl(container, VFIO_IOMMU_ENABLE); /* v1 needs it; no DMA is mapped */
		return;
	}
	errno = ENODEV;
	die("no VFIO IOMMU backend (load vfio_iommu_type1 or vfio_iommu_spapr_tce)");
}

int main(int argc, char **argv)
{
	char path[64];
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	struct vfio_irq_info irq = { .argsz = sizeof(irq), .index = VFIO_PCI_INTX_IRQ_INDEX };

	if (argc != 3) {
		fprintf(stderr, "usage: %s <pci address> <iommu group>\n", argv[0]);
		return 2;
	}
	int container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0)
		die("/dev/vfio/vfio");
	snprintf(path, sizeof(path), "/dev/vfio/%s", argv[2]);
	int group = open(path, O_RDWR);
	if (group < 0)
		die(path);
	if (ioctl(group, VFIO_GROUP_GET_STATUS, &status) || !(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EBUSY;
		die("group not viable (every device in it must be bound to vfio-pci)");
	}
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container))
		die("VFIO_GROUP_SET_CONTAINER");
	set_iommu(container);
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[1]);
	if (dev < 0)
		die("VFIO_GROUP_GET_DEVICE_FD");
	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &bar) || bar.size < 8)
		die("BAR0 region info");
	bar0 = bar.offset;
	if (ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &irq) || irq.count != 1)
		die("INTx info");

	/* 8N1, no FIFO (one interrupt per byte), OUT2 (gates the IRQ on PC UARTs), RX irq. */
	uart_write(UART_LCR, 0x03);
	uart_write(UART_IIR, 0x00);
	uart_write(UART_MCR, 0x08);
	while (uart_read(UART_LSR) & 0x01)
		uart_read(UART_RBR);

	int efd = eventfd(0, 0);
	if (efd < 0)
		die("eventfd");
	set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, efd);
	uart_write(UART_IER, 0x01);
	printf("READER dev=%s tty=vfio irq=vfio-intx flags=0x%x\n", argv[1], irq.flags);
	fflush(stdout);

	for (;;) {
		struct pollfd p = { .fd = efd, .events = POLLIN };
		uint64_t n;

		if (poll(&p, 1, 1000) <= 0)
			continue; /* no interrupt: keep waiting, as a VMM would */
		if (read(efd, &n, sizeof(n)) != sizeof(n))
			die("eventfd read");
		uart_read(UART_IIR);
		while (uart_read(UART_LSR) & 0x01) {
			uart_read(UART_RBR); /* reading the data deasserts the line */
			if (puts("R") == EOF || fflush(stdout))
				return 0; /* the rig went away */
		}
		set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, -1);
	}
}

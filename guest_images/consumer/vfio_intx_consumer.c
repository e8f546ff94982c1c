/*
 * intx-rig's userspace VFIO consumer (fast mode, no L2): owns the device under test
 * through vfio-pci in L1 and services its INTx the way a VMM does: wait on the trigger
 * eventfd, read what deasserts the line, then UNMASK. Two devices, told apart by their
 * IDs: the 16550 UART of pci-serial (1b36:0002; reading the data deasserts), and a
 * modern-only virtio console (1af4:1043, MSI-X off; reading its ISR deasserts), whose
 * receive queue lives in DMA memory mapped through the VFIO IOMMU (type1 or sPAPR TCE).
 *
 * Usage: vfio_intx_consumer [-u unmask delay in us] [-s scenario] [-p non-2.3|2.3] <pci address> <iommu group>
 * (-p: vfio's INTx path for the device, as the rig's bind found it; the exclusive scenario
 * expects the line refused on the non-2.3 one and shared on the 2.3 one)
 * Prints "READER dev=... tty=vfio irq=..." once. The flow (the default scenario) then prints
 * one "R" line per byte read, once the line is unmasked again, which is what the rig's
 * drive loop counts (the same protocol as the reader in L2). The delay makes it a slow VMM,
 * between servicing and unmasking. Any other scenario (scenarios.h) asks the rig for each
 * byte ("PUSH") and says what it saw ("CHECK ..."), then "END".
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "consumer.h"

int dev;
int one_byte_at_a_time;
int non_2_3;
static int group, container, iommu_type;
static char device_name[64];
static useconds_t unmask_delay_us;
static off_t config_space;

void die(const char *what)
{
	fprintf(stderr, "vfio_intx_consumer: %s: %s\n", what, strerror(errno));
	exit(2);
}

static uint64_t io_read(off_t at, int size)
{
	uint64_t v = 0;
	if (pread(dev, &v, size, at) != size)
		die("device read");
	return size == 1 ? v : size == 2 ? le16toh(v) : size == 4 ? le32toh(v) : le64toh(v);
}

static void io_write(off_t at, int size, uint64_t v)
{
	uint64_t le = size == 1 ? v : size == 2 ? htole16(v) : size == 4 ? htole32(v) : htole64(v);
	if (pwrite(dev, &le, size, at) != size)
		die("device write");
}

/* The command register's INTx disable bit, as the user writes it: vfio emulates it
 * (vfio_basic_config_write() -> vfio_pci_intx_mask() / vfio_pci_intx_unmask()). */
void command_intx_disable(int on)
{
	uint16_t cmd = io_read(config_space + 4, 2);

	io_write(config_space + 4, 2, on ? cmd | 0x400 : cmd & ~0x400);
}

int device_reset(void)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };

	if (ioctl(dev, VFIO_DEVICE_GET_INFO, &info))
		die("VFIO_DEVICE_GET_INFO");
	if (!ioctl(dev, VFIO_DEVICE_RESET))
		return 1;
	if (errno == EINVAL && !(info.flags & VFIO_DEVICE_FLAGS_RESET))
		return 0;     /* vfio_pci_ioctl_reset(): no reset_works */
	die("VFIO_DEVICE_RESET");
	return 0;
}

static off_t region(unsigned index, uint64_t min_size)
{
	struct vfio_region_info r = { .argsz = sizeof(r), .index = index };
	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r) || r.size < min_size)
		die("region info");
	return r.offset;
}

void set_irqs(uint32_t flags, int fd)
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
		die(flags & VFIO_IRQ_SET_ACTION_UNMASK ? "INTx unmask" :
		    flags & VFIO_IRQ_SET_ACTION_MASK ? "INTx mask" : "INTx trigger eventfd");
}

/* A trigger eventfd for INTx of a device fd (efd -1: none, INTx off); 0 or the errno. */
int intx_trigger(int fd, int efd)
{
	char buf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *set = (struct vfio_irq_set *)buf;

	set->flags = efd < 0 ? VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER
			     : VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_INTX_IRQ_INDEX;
	set->start = 0;
	set->count = efd < 0 ? 0 : 1;
	set->argsz = efd < 0 ? sizeof(*set) : sizeof(buf);
	memcpy(set->data, &efd, sizeof(int));
	return ioctl(fd, VFIO_DEVICE_SET_IRQS, set) ? errno : 0;
}

/* INTx off: no trigger, vfio frees the IRQ (vfio_intx_disable()). */
void intx_off(void)
{
	if ((errno = intx_trigger(dev, -1)))
		die("INTx off");
}

static void set_iommu(void)
{
	/* type1 on x86, the sPAPR TCE backend on POWER: whichever the kernel offers. */
	static const int types[] = { VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_IOMMU,
				     VFIO_SPAPR_TCE_v2_IOMMU, VFIO_SPAPR_TCE_IOMMU };
	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (ioctl(container, VFIO_CHECK_EXTENSION, types[i]) <= 0)
			continue;
		if (ioctl(container, VFIO_SET_IOMMU, types[i]))
			die("VFIO_SET_IOMMU");
		iommu_type = types[i];
		if (types[i] == VFIO_SPAPR_TCE_IOMMU && ioctl(container, VFIO_IOMMU_ENABLE))
			die("VFIO_IOMMU_ENABLE"); /* v1 needs it before any DMA map */
		return;
	}
	errno = ENODEV;
	die("no VFIO IOMMU backend (load vfio_iommu_type1 or vfio_iommu_spapr_tce)");
}

/* Maps buf for the device's DMA; returns the address the device uses for it. */
static uint64_t map_dma(void *buf, uint64_t size)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map), .vaddr = (uintptr_t)buf, .size = size,
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
	};
	/* Not at 0: QEMU takes a ring at address 0 for a queue not set up. Inside the
	 * sPAPR default window (2 GB from dma32_window_start), outside x86's reserved ranges. */
	uint64_t offset = 1 << 24;
	if (iommu_type == VFIO_SPAPR_TCE_IOMMU || iommu_type == VFIO_SPAPR_TCE_v2_IOMMU) {
		struct vfio_iommu_spapr_tce_info info = { .argsz = sizeof(info) };
		if (ioctl(container, VFIO_IOMMU_SPAPR_TCE_GET_INFO, &info))
			die("VFIO_IOMMU_SPAPR_TCE_GET_INFO");
		map.iova = info.dma32_window_start; /* v2 creates this default window on the first map */
		if (info.dma32_window_size < offset + size) {
			errno = ENOSPC;
			die("sPAPR default DMA window too small");
		}
		if (iommu_type == VFIO_SPAPR_TCE_v2_IOMMU) {
			struct vfio_iommu_spapr_register_memory reg = {
				.argsz = sizeof(reg), .vaddr = (uintptr_t)buf, .size = size };
			if (ioctl(container, VFIO_IOMMU_SPAPR_REGISTER_MEMORY, &reg))
				die("VFIO_IOMMU_SPAPR_REGISTER_MEMORY");
		}
	}
	map.iova += offset;
	if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map))
		die("VFIO_IOMMU_MAP_DMA");
	return map.iova;
}

/* -- pci-serial's 16550 UART, in BAR0 (I/O) ------------------------------------------ */
enum { UART_RBR = 0, UART_IER = 1, UART_IIR = 2, UART_LCR = 3, UART_MCR = 4, UART_LSR = 5 };
static off_t bar0;

static void uart_start(void)
{
	bar0 = region(VFIO_PCI_BAR0_REGION_INDEX, 8);
	/* 8N1, no FIFO (one interrupt per byte), OUT2 (gates the IRQ on PC UARTs). */
	io_write(bar0 + UART_LCR, 1, 0x03);
	io_write(bar0 + UART_IIR, 1, 0x00);
	io_write(bar0 + UART_MCR, 1, 0x08);
	while (io_read(bar0 + UART_LSR, 1) & 0x01)
		io_read(bar0 + UART_RBR, 1);
}

static void uart_enable(void)
{
	io_write(bar0 + UART_IER, 1, 0x01); /* RX data interrupt */
}

static int uart_asserted(void)
{
	return !(io_read(bar0 + UART_IIR, 1) & 0x01); /* an interrupt is pending (RX data only) */
}

static int uart_service(void)
{
	int n = 0;
	io_read(bar0 + UART_IIR, 1);
	while (io_read(bar0 + UART_LSR, 1) & 0x01) {
		io_read(bar0 + UART_RBR, 1); /* reading the data deasserts the line */
		if (++n && one_byte_at_a_time)
			break;  /* the next byte, if it came already, asserts the line again */
	}
	return n;
}

/* -- a modern virtio console (virtio 1.x over PCI, no MSI-X) ------------------------- */
enum { VIRTIO_CAP_COMMON = 1, VIRTIO_CAP_NOTIFY = 2, VIRTIO_CAP_ISR = 3 };
/* Common configuration registers (virtio 1.x, 4.1.4.3). */
enum { CC_DFSELECT = 0x00, CC_DF = 0x04, CC_GFSELECT = 0x08, CC_GF = 0x0c, CC_STATUS = 0x14,
       CC_QSELECT = 0x16, CC_QSIZE = 0x18, CC_QENABLE = 0x1c, CC_QNOTIFYOFF = 0x1e,
       CC_QDESC = 0x20, CC_QAVAIL = 0x28, CC_QUSED = 0x30 };
enum { ST_ACK = 1, ST_DRIVER = 2, ST_DRIVER_OK = 4, ST_FEATURES_OK = 8 };
/* Feature bits 32 and up: VERSION_1 (required of a modern device) and ACCESS_PLATFORM
 * (its DMA goes through the IOMMU, which is what lets vfio pass it on). */
#define FEATURES_HI (1u << 0 | 1u << 1)
#define QSZ 16
#define BUFSZ 64
#define DESC_F_WRITE 2

struct vq_desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct vq_used_elem { uint32_t id, len; };
struct vq_mem {                     /* one DMA-mapped block, its parts where virtio wants them */
	struct vq_desc desc[QSZ];   /* 16-byte aligned */
	struct { uint16_t flags, idx, ring[QSZ]; } avail __attribute__((aligned(4096)));
	struct { uint16_t flags, idx; struct vq_used_elem ring[QSZ]; } used __attribute__((aligned(4096)));
	uint8_t buf[QSZ][BUFSZ] __attribute__((aligned(4096)));
};

static struct vq_mem *vq;
static uint64_t vq_iova;
static off_t common, isr, notify;
static uint16_t last_used, avail_idx;

#define IOVA_OF(field) (vq_iova + ((uintptr_t)(field) - (uintptr_t)vq))

static void virtio_find_caps(void)
{
	off_t bars[6];
	uint32_t notify_mult = 0;
	unsigned pos = io_read(config_space + 0x34, 1) & 0xfc;

	for (int i = 0; i < 6; i++)
		bars[i] = region(VFIO_PCI_BAR0_REGION_INDEX + i, 0);
	for (int guard = 0; pos && guard < 48; guard++, pos = io_read(config_space + pos + 1, 1) & 0xfc) {
		if (io_read(config_space + pos, 1) != 0x09) /* vendor-specific: virtio's */
			continue;
		unsigned type = io_read(config_space + pos + 3, 1), bar = io_read(config_space + pos + 4, 1);
		off_t at = (bar < 6 ? bars[bar] : 0) + io_read(config_space + pos + 8, 4);
		if (type == VIRTIO_CAP_COMMON)
			common = at;
		else if (type == VIRTIO_CAP_ISR)
			isr = at;
		else if (type == VIRTIO_CAP_NOTIFY) {
			notify = at;
			notify_mult = io_read(config_space + pos + 16, 4);
		}
	}
	if (!common || !isr || !notify) {
		errno = ENODEV;
		die("virtio capabilities (common, ISR, notify) not all found");
	}
	io_write(common + CC_QSELECT, 2, 0);
	notify += (off_t)io_read(common + CC_QNOTIFYOFF, 2) * notify_mult;
}

static void virtio_status(uint8_t bits)
{
	io_write(common + CC_STATUS, 1, io_read(common + CC_STATUS, 1) | bits);
}

static void virtio_start(void)
{
	virtio_find_caps();
	io_write(common + CC_STATUS, 1, 0); /* reset */
	for (int i = 0; io_read(common + CC_STATUS, 1) != 0; i++)
		if (i > 1000000) {
			errno = ETIMEDOUT;
			die("virtio reset");
		}
	virtio_status(ST_ACK | ST_DRIVER);
	io_write(common + CC_DFSELECT, 4, 1);
	uint32_t hi = io_read(common + CC_DF, 4);
	if (!(hi & 1)) {
		errno = ENOTSUP;
		die("not a modern virtio device (no VERSION_1)");
	}
	io_write(common + CC_GFSELECT, 4, 0);
	io_write(common + CC_GF, 4, 0); /* no MULTIPORT: port 0, the console, and its queues */
	io_write(common + CC_GFSELECT, 4, 1);
	io_write(common + CC_GF, 4, hi & FEATURES_HI);
	virtio_status(ST_FEATURES_OK);
	if (!(io_read(common + CC_STATUS, 1) & ST_FEATURES_OK)) {
		errno = ENOTSUP;
		die("virtio device refused the features");
	}

	long page = sysconf(_SC_PAGESIZE);
	size_t size = (sizeof(*vq) + page - 1) / page * page;
	if (!vq) { /* mapped once: a reopened device keeps the container and its mappings */
		vq = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (vq == MAP_FAILED)
			die("mmap");
		vq_iova = map_dma(vq, size);
	}
	memset(vq, 0, size);
	last_used = 0;
	for (int i = 0; i < QSZ; i++) {
		vq->desc[i].addr = htole64(IOVA_OF(vq->buf[i]));
		vq->desc[i].len = htole32(one_byte_at_a_time ? 1 : BUFSZ);
		vq->desc[i].flags = htole16(DESC_F_WRITE);
		vq->avail.ring[i] = htole16(i);
	}
	io_write(common + CC_QSELECT, 2, 0); /* receiveq of port 0 */
	if (io_read(common + CC_QSIZE, 2) < QSZ) {
		errno = ENOSPC;
		die("virtio receive queue too small");
	}
	io_write(common + CC_QSIZE, 2, QSZ);
	io_write(common + CC_QDESC, 4, IOVA_OF(vq->desc));
	io_write(common + CC_QDESC + 4, 4, IOVA_OF(vq->desc) >> 32);
	io_write(common + CC_QAVAIL, 4, IOVA_OF(&vq->avail));
	io_write(common + CC_QAVAIL + 4, 4, IOVA_OF(&vq->avail) >> 32);
	io_write(common + CC_QUSED, 4, IOVA_OF(&vq->used));
	io_write(common + CC_QUSED + 4, 4, IOVA_OF(&vq->used) >> 32);
	io_write(common + CC_QENABLE, 2, 1);
}

static void virtio_enable(void)
{
	/* One 1-byte buffer at a time makes the console take a byte per interrupt, as the UART
	 * with its FIFO off: QEMU gives the chardev as many bytes as the buffers hold. */
	avail_idx = one_byte_at_a_time ? 1 : QSZ;
	__atomic_store_n(&vq->avail.idx, htole16(avail_idx), __ATOMIC_RELEASE);
	virtio_status(ST_DRIVER_OK); /* the device sends port 0's data from now on */
	io_write(notify, 2, 0);
}

static int virtio_service(void)
{
	int n = 0;
	io_read(isr, 1); /* reading the ISR deasserts the line */
	while (last_used != le16toh(__atomic_load_n(&vq->used.idx, __ATOMIC_ACQUIRE))) {
		struct vq_used_elem e = vq->used.ring[last_used++ % QSZ];
		n += le32toh(e.len);
		vq->avail.ring[avail_idx % QSZ] = htole16(le32toh(e.id));
		__atomic_store_n(&vq->avail.idx, htole16(++avail_idx), __ATOMIC_RELEASE);
	}
	if (n)
		io_write(notify, 2, 0); /* buffers given back */
	return n;
}

static int virtio_asserted(void)
{
	/* The ISR would tell, but reading it deasserts: QEMU keeps the PCI status register's
	 * interrupt bit (bit 3) with the line for its every device, virtio included. */
	return !!(io_read(config_space + 6, 2) & 0x08);
}

static const struct driver drivers[] = {
	{ "1b36:0002", uart_start, uart_enable, uart_service, uart_asserted },
	{ "1af4:1043", virtio_start, virtio_enable, virtio_service, virtio_asserted },
};

static const struct driver *driver_for_device(void)
{
	char id[16];
	snprintf(id, sizeof(id), "%04x:%04x", (unsigned)io_read(config_space, 2),
		 (unsigned)io_read(config_space + 2, 2));
	for (unsigned i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (!strcmp(drivers[i].id, id))
			return &drivers[i];
	fprintf(stderr, "vfio_intx_consumer: no driver for device %s\n", id);
	exit(2);
}

/* Memory space and bus mastering on (vfio-pci leaves the command register as it was, and
 * its release path turns bus mastering off). */
static void command_on(void)
{
	io_write(config_space + 4, 2, io_read(config_space + 4, 2) | 0x6);
}

static void open_device(void)
{
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, device_name);
	if (dev < 0)
		die("VFIO_GROUP_GET_DEVICE_FD");
	config_space = region(VFIO_PCI_CONFIG_REGION_INDEX, 64);
	command_on();
}

void reopen_device(void)
{
	if (close(dev))
		die("closing the device fd");
	open_device();
}

static void sysfs_read(const char *dev_name, const char *attr, char *out, size_t size)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", dev_name, attr);
	out[0] = 0;
	if ((f = fopen(path, "r"))) {
		if (!fgets(out, size, f))
			out[0] = 0;
		fclose(f);
	}
	out[strcspn(out, "\n")] = 0;
}

static void sysfs_link(const char *dev_name, const char *attr, char *out, size_t size)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", dev_name, attr);
	n = readlink(path, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = 0;
	snprintf(out, size, "%.*s", (int)size - 1, strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
}

static int group_fd_of(const char *iommu_group);

/* The twin (the exclusive scenario): the other device with the device's IDs, bound to vfio-pci
 * on the same INTx line (the rig put it there and bound it). Its device fd. */
int open_twin(void)
{
	char id[32], other[32], attr[64], irq[16], twin_irq[16], drv[64], grp[32];
	DIR *d = opendir("/sys/bus/pci/devices");
	struct dirent *e;

	if (!d)
		die("/sys/bus/pci/devices");
	sysfs_read(device_name, "vendor", id, sizeof(id));
	sysfs_read(device_name, "device", attr, sizeof(attr));
	strncat(id, attr, sizeof(id) - strlen(id) - 1);
	sysfs_read(device_name, "irq", irq, sizeof(irq));
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, device_name))
			continue;
		sysfs_read(e->d_name, "vendor", other, sizeof(other));
		sysfs_read(e->d_name, "device", attr, sizeof(attr));
		strncat(other, attr, sizeof(other) - strlen(other) - 1);
		sysfs_link(e->d_name, "driver", drv, sizeof(drv));
		if (strcmp(other, id) || strcmp(drv, "vfio-pci"))
			continue;
		sysfs_read(e->d_name, "irq", twin_irq, sizeof(twin_irq));
		if (strcmp(irq, twin_irq)) {
			fprintf(stderr, "vfio_intx_consumer: the twin %s is on IRQ %s, the device on %s: not one line\n",
				e->d_name, twin_irq, irq);
			exit(3);
		}
		sysfs_link(e->d_name, "iommu_group", grp, sizeof(grp));
		int fd = ioctl(group_fd_of(grp), VFIO_GROUP_GET_DEVICE_FD, e->d_name);
		if (fd < 0)
			die("VFIO_GROUP_GET_DEVICE_FD (the twin)");
		printf("NOTE the twin %s shares IRQ %s, IOMMU group %s\n", e->d_name, irq, grp);
		fflush(stdout);
		closedir(d);
		return fd;
	}
	fprintf(stderr, "vfio_intx_consumer: no twin of %s bound to vfio-pci\n", device_name);
	exit(3);
}

static char group_name[32];

/* A group in the container: opened, checked viable, set to the container. */
static int add_group(const char *iommu_group)
{
	char path[64];
	struct vfio_group_status status = { .argsz = sizeof(status) };

	snprintf(path, sizeof(path), "/dev/vfio/%s", iommu_group);
	int fd = open(path, O_RDWR);
	if (fd < 0)
		die(path);
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status) || !(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EBUSY;
		die("group not viable (every device in it must be bound to vfio-pci)");
	}
	if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &container))
		die("VFIO_GROUP_SET_CONTAINER");
	return fd;
}

static int group_fd_of(const char *iommu_group)
{
	return strcmp(iommu_group, group_name) ? add_group(iommu_group) : group;
}

static void open_group(const char *iommu_group)
{
	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0)
		die("/dev/vfio/vfio");
	snprintf(group_name, sizeof(group_name), "%s", iommu_group);
	group = add_group(iommu_group);
	set_iommu();
}

static int flow(const struct driver *drv, int efd)
{
	for (;;) {
		struct pollfd p = { .fd = efd, .events = POLLIN };
		uint64_t n;

		if (poll(&p, 1, 1000) <= 0)
			continue; /* no interrupt: keep waiting, as a VMM would */
		if (read(efd, &n, sizeof(n)) != sizeof(n))
			die("eventfd read");
		int bytes = drv->service();

		/*
		 * Unmask first, then say what was read: the rig pushes the next byte once it
		 * has read the last "R", and a byte that asserts the line while the source is
		 * still masked is lost on QEMU's XIVE (it re-sends an asserted LSI on EOI, not
		 * on unmask). Said before the unmask, a slow unmask (a loaded machine) let
		 * that happen: a kernel with the fix STALLed (docs/facts.md).
		 */
		if (unmask_delay_us)
			usleep(unmask_delay_us); /* a slow VMM (a test's): the report still waits */
		set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, -1);
		for (; bytes > 0; bytes--)
			if (puts("R") == EOF || fflush(stdout))
				return 0; /* the rig went away */
	}
}

static void usage(const char *me)
{
	fprintf(stderr, "usage: %s [-u unmask delay in us] [-s scenario] [-p non-2.3|2.3] <pci address> <iommu group>\n", me);
	exit(2);
}

int main(int argc, char **argv)
{
	struct vfio_irq_info irq = { .argsz = sizeof(irq), .index = VFIO_PCI_INTX_IRQ_INDEX };
	const char *scenario = "flow";
	int opt;

	while ((opt = getopt(argc, argv, "u:s:p:")) != -1) {
		if (opt == 'p' && (!strcmp(optarg, "non-2.3") || !strcmp(optarg, "2.3")))
			non_2_3 = !strcmp(optarg, "non-2.3");
		else if (opt == 'u')
			unmask_delay_us = (useconds_t)strtoul(optarg, NULL, 10);
		else if (opt == 's' && (!strcmp(optarg, "flow") || scenario_known(optarg)))
			scenario = optarg;
		else
			usage(argv[0]);
	}
	if (argc - optind != 2 || strlen(argv[optind]) >= sizeof(device_name))
		usage(argv[0]);
	strcpy(device_name, argv[optind]);
	open_group(argv[optind + 1]);
	open_device();
	if (ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &irq) || irq.count != 1)
		die("INTx info");

	const struct driver *drv = driver_for_device();
	drv->start();
	int efd = eventfd(0, 0);
	if (efd < 0)
		die("eventfd");
	set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, efd);
	drv->enable();
	printf("READER dev=%s tty=vfio irq=vfio-intx flags=0x%x scenario=%s\n", device_name, irq.flags, scenario);
	fflush(stdout);
	return strcmp(scenario, "flow") ? run_scenario(scenario, drv, efd) : flow(drv, efd);
}

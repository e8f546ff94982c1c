/*
 * The scenarios beyond the flow: each takes one of vfio-pci's INTx paths that a VMM takes
 * rarely (the user masks, the line drops while masked, the device fd is released while the
 * line is asserted) and says what it saw. What each should see, and why, from the kernel's
 * and QEMU's source: docs/scenarios.md.
 *
 * Protocol with the rig, one line each on stdout:
 *   PUSH [n]                      the rig pushes one byte (or n at once) into the device
 *   CHECK <step> ok [what]        a step held
 *   CHECK <step> lost <what>      an interrupt that had to come did not (the device waits)
 *   CHECK <step> spurious <what>  an event came that must not have
 *   CHECK <step> wrong <what>     vfio answered a call otherwise than it must
 *   SERVICED                      an interrupt was serviced and unmasked (the flow's "R")
 *   NOTE <what>                   something worth the record that is no verdict
 *   END                           the scenario is over (the consumer then waits for the rig
 *                                 to hang up, INTx still set up, for its last sample)
 * A step that cannot be taken (a push that never reaches the device) is the machinery's
 * failure: the consumer says so on stderr and exits 3, and the rig reports an ERROR.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "consumer.h"

/* Under TCG a delivered interrupt reaches the eventfd in well under a second (the flow's
 * median is milliseconds); 5 s is past any load the rig puts on a machine. QUIET_MS is how
 * long a step waits to be sure no event comes: 20 times the flow's median delivery. */
#define DELIVER_MS 5000
#define QUIET_MS 500
#define PUSH_MS 10000
#define FLOW_AFTER 3
/* storm: bytes pushed at once, and how long the VMM takes between servicing and unmasking
 * (a line the controller keeps delivering while vfio has it disabled shows in L0's count
 * of deliveries per serviced interrupt; the rig bounds it). */
#define STORM_BYTES 16
#define STORM_UNMASK_US 50000   /* past the legacy model's 20 ms gap before its next byte */

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (fflush(stdout))
		exit(0); /* the rig went away */
}

static uint64_t events_within(int efd, int ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t n = 0;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	if (read(efd, &n, sizeof(n)) != sizeof(n))
		die("eventfd read");
	return n;
}

static void mask(int on)
{
	set_irqs(VFIO_IRQ_SET_DATA_NONE | (on ? VFIO_IRQ_SET_ACTION_MASK : VFIO_IRQ_SET_ACTION_UNMASK), -1);
}

/* Asks the rig for a byte and waits until the device drives its line for it. */
static void push(const struct driver *drv)
{
	struct timespec tick = { 0, 2000000 };

	say("PUSH");
	for (int waited = 0; !drv->asserted(); waited += 2) {
		if (waited >= PUSH_MS) {
			fprintf(stderr, "vfio_intx_consumer: the device did not assert its line within %d s "
				"of the rig's push\n", PUSH_MS / 1000);
			exit(3);
		}
		nanosleep(&tick, NULL);
	}
}

static int check(const char *step, int ok, const char *kind, const char *what)
{
	if (ok)
		say("CHECK %s ok", step);
	else
		say("CHECK %s %s %s", step, kind, what);
	return ok;
}

/* The flow's one interrupt: push, an event, service, unmask. */
static int flow_once(const struct driver *drv, int efd, const char *step)
{
	push(drv);
	int got = events_within(efd, DELIVER_MS) > 0;
	check(step, got, "lost", "no event within 5 s of the push (the line stayed asserted)");
	drv->service();
	mask(0);
	if (got)
		say("SERVICED");
	return got;
}

/* Interrupts flow after the scenario's step: a few, up to the first lost. */
static void flow_after(const struct driver *drv, int efd)
{
	char step[32];

	for (int i = 1; i <= FLOW_AFTER; i++) {
		snprintf(step, sizeof(step), "flow-after-%d", i);
		if (!flow_once(drv, efd, step))
			return;
	}
}

/* One way to mask INTx, and what its steps are called. */
struct masking {
	void (*set)(int on);
	const char *quiet, *delivered, *what_spurious, *what_lost;
};

/* Masked, the device asserts: nothing while masked, exactly one event once unmasked (the
 * line is still asserted then). */
static void pending_while(const struct masking *m, const struct driver *drv, int efd)
{
	m->set(1);
	push(drv);
	uint64_t n = events_within(efd, QUIET_MS);
	check(m->quiet, n == 0, "spurious", m->what_spurious);
	m->set(0);
	int delivered = (n ? n : events_within(efd, DELIVER_MS)) > 0;
	check(m->delivered, delivered, "lost", m->what_lost);
	if (delivered)  /* vfio masked the line as it signalled: no second event before the next unmask */
		check("delivered-once", events_within(efd, QUIET_MS) == 0, "spurious",
		      "a second event for the same assertion");
	drv->service();
	mask(0);
	if (delivered)
		say("SERVICED");
	flow_after(drv, efd);
}

static void masked_pending(const struct driver *drv, int efd)
{
	static const struct masking by_ioctl = {
		mask, "quiet-while-masked", "delivered-on-unmask", "an event while INTx was masked",
		"the line was asserted at the unmask and no event came within 5 s" };
	pending_while(&by_ioctl, drv, efd);
}

/* Masked by the user, the device asserts and is serviced (the line drops) before the
 * unmask: no event after the unmask. */
static void deassert_while_masked(const struct driver *drv, int efd)
{
	mask(1);
	push(drv);
	uint64_t n = events_within(efd, QUIET_MS);
	check("quiet-while-masked", n == 0, "spurious", "an event while INTx was masked");
	drv->service();
	mask(0);
	n = events_within(efd, QUIET_MS);
	check("quiet-after-unmask", n == 0, "spurious",
	      "an event after the unmask for a line that dropped while masked");
	if (n) {
		drv->service();
		mask(0);
	}
	flow_after(drv, efd);
}

/* The device fd closed while the line is asserted and vfio has it masked (its release
 * path frees the IRQ), opened again, INTx enabled again: a line still asserted then gives
 * an event, and interrupts flow. */
static void reopen(const struct driver *drv, int efd)
{
	push(drv);
	uint64_t n = events_within(efd, DELIVER_MS);
	check("first", n > 0, "lost", "no event within 5 s of the push");
	reopen_device();
	int still = drv->asserted();
	set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, efd);
	if (still) {
		n = events_within(efd, DELIVER_MS);
		check("pending-after-reopen", n > 0, "lost",
		      "the line was still asserted when INTx was enabled again and no event came within 5 s");
		drv->service();
		if (n) {
			mask(0);
			say("SERVICED");
		}
	} else {
		say("NOTE the device was reset between release and open: no line asserted at the enable");
	}
	drv->start();   /* the device as after a fresh open, whether it was reset or not */
	drv->enable();
	flow_after(drv, efd);
}

/* masked-pending with the command register's INTx disable bit instead of ACTION_MASK: the
 * way a VMM passes on a guest that masks INTx itself. */
static void config_mask(const struct driver *drv, int efd)
{
	static const struct masking by_command = {
		command_intx_disable, "quiet-while-disabled", "delivered-on-enable",
		"an event while INTx was disabled in the command register",
		"the line was asserted when INTx was enabled again and no event came within 5 s" };

	/* First with INTx off: vfio lets the physical bit follow the virtual one (2.3 path) and
	 * nothing else (vfio_pci_intx_mask() and _unmask() when INTx is not in use). */
	intx_off();
	command_intx_disable(1);
	command_intx_disable(0);
	set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, efd);
	pending_while(&by_command, drv, efd);
}

/* Interrupts flow, then the user gives INTx a new trigger eventfd while it is enabled
 * (vfio_intx_set_signal()): the next ones come on the new one, none on the old. */
static void new_trigger(const struct driver *drv, int efd)
{
	flow_once(drv, efd, "old-trigger");
	int efd2 = eventfd(0, 0);
	if (efd2 < 0)
		die("eventfd");
	set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, efd2);
	/* What the old trigger got before the swap returned is the VMM's to service (a device
	 * that drops its line late is delivered again at the unmask); after it, vfio signals the
	 * new one only (synchronize_irq() in vfio_intx_set_signal()). */
	if (events_within(efd, 0)) {
		drv->service();
		mask(0);
		say("NOTE an event on the old trigger before the swap returned (serviced)");
	}
	flow_after(drv, efd2);
	check("quiet-old-trigger", events_within(efd, 0) == 0, "spurious", "an event on the replaced trigger");
}

/* The device asserts and its event comes (vfio has it masked); the user resets the device
 * (VFIO_DEVICE_RESET: vfio_pci_ioctl_reset() -> pci_try_reset_function(), INTx state left
 * as it is), then unmasks: the reset dropped the line, so no event; then interrupts flow.
 * A device without a reset method is refused (EINVAL) and serviced as in the flow. */
static void reset_asserted(const struct driver *drv, int efd)
{
	push(drv);
	uint64_t n = events_within(efd, DELIVER_MS);
	check("first", n > 0, "lost", "no event within 5 s of the push");
	if (!device_reset()) {
		say("NOTE the device has no reset method (VFIO_DEVICE_FLAGS_RESET clear): vfio refused "
		    "VFIO_DEVICE_RESET with EINVAL; serviced as in the flow");
		drv->service();
		mask(0);
		if (n)
			say("SERVICED");
	} else {
		check("line-dropped", !drv->asserted(), "spurious", "the device still drives its line after the reset");
		mask(0);
		n = events_within(efd, QUIET_MS);
		check("quiet-after-reset", n == 0, "spurious",
		      "an event after the unmask for an interrupt the reset cleared");
		drv->start();   /* the device as after a fresh open */
		drv->enable();
		if (n) {
			drv->service();
			mask(0);
		}
	}
	flow_after(drv, efd);
}

/* The device re-asserts at once after each service (bytes pushed together, one per
 * interrupt with the FIFO off), while vfio still has the line disabled, and the VMM is slow
 * to unmask: every byte must be read, and the rig bounds L0's deliveries per serviced
 * interrupt (without the fix the lazily disabled line is delivered once more each time). */
static void storm(const struct driver *drv, int efd)
{
	int bytes = 0, events = 0, empty = 0;

	one_byte_at_a_time = 1;     /* the UART's FIFO is off already; the console's buffers */
	drv->start();
	drv->enable();
	say("PUSH %d", STORM_BYTES);
	while (bytes < STORM_BYTES) {
		if (!events_within(efd, DELIVER_MS))
			break;
		events++;
		int got = drv->service();
		bytes += got;
		empty += !got;
		usleep(STORM_UNMASK_US);
		mask(0);
		say("SERVICED");
	}
	say("NOTE %d of %d bytes read in %d events (%d found nothing to read)", bytes, STORM_BYTES, events, empty);
	check("all-read", bytes >= STORM_BYTES, "lost",
	      "no event within 5 s while the device still had bytes to give (its line asserted)");
}

/* L1's kernel log from now on: the refusal's own words (genirq's "Flags mismatch"). */
static int kmsg_from_now(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

static void kmsg_notes(int fd, const char *about)
{
	char rec[1024];
	ssize_t n;

	while (fd >= 0 && (n = read(fd, rec, sizeof(rec) - 1)) > 0) {
		rec[n] = 0;
		char *text = strchr(rec, ';');
		if (text && strstr(text, about))
			say("NOTE L1's kernel: %.*s", (int)strcspn(text + 1, "\n"), text + 1);
	}
	if (fd >= 0)
		close(fd);
}

/* Two devices on one INTx line: a twin of the device holds it first, then the device asks
 * for it. vfio requests the IRQ shared only for a device on its 2.3 path (vfio_intx_enable():
 * IRQF_SHARED if pci_2_3), so request_irq() refuses the non-2.3 one (EBUSY, __setup_irq()'s
 * flags mismatch) and lets the 2.3 one share. Then interrupts flow (on the non-2.3 path once
 * the twin let go), and none reaches the twin's eventfd: its handler finds its own device
 * idle (IRQ_NONE). */
static void exclusive(const struct driver *drv, int efd)
{
	int twin = open_twin(), tefd = eventfd(0, 0), err;
	char what[160];

	if (tefd < 0)
		die("eventfd");
	intx_off();
	if ((err = intx_trigger(twin, tefd)))
		die("the twin's INTx trigger");
	int kmsg = kmsg_from_now();
	err = intx_trigger(dev, efd);
	kmsg_notes(kmsg, "genirq");
	if (non_2_3) {
		if (err)
			snprintf(what, sizeof(what), "refused with %s, not EBUSY", strerror(err));
		else
			snprintf(what, sizeof(what), "vfio let a non-2.3 device share a line another holds");
		check("refused-while-held", err == EBUSY, "wrong", what);
		if (intx_trigger(twin, -1))
			die("the twin's INTx off");
		if (!err)
			intx_off();
		set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, efd);
	} else {
		snprintf(what, sizeof(what), "vfio refused a 2.3 device the shared line: %s", strerror(err));
		check("shares-the-line", err == 0, "wrong", what);
		if (err)
			set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, efd);
	}
	flow_after(drv, efd);
	check("twin-quiet", events_within(tefd, 0) == 0, "spurious", "the twin's eventfd was signalled for the "
	      "device's interrupts");
}

static const struct {
	const char *name;
	void (*run)(const struct driver *, int);
} scenarios[] = {
	{ "masked-pending", masked_pending },
	{ "deassert-while-masked", deassert_while_masked },
	{ "reopen", reopen },
	{ "config-mask", config_mask },
	{ "new-trigger", new_trigger },
	{ "reset-asserted", reset_asserted },
	{ "storm", storm },
	{ "exclusive", exclusive },
};

int scenario_known(const char *name)
{
	for (unsigned i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (!strcmp(scenarios[i].name, name))
			return 1;
	return 0;
}

int run_scenario(const char *name, const struct driver *drv, int efd)
{
	for (unsigned i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (!strcmp(scenarios[i].name, name)) {
			scenarios[i].run(drv, efd);
			say("END");
			/* INTx stays set up until the rig hangs up: it samples L1's counts after END. */
			for (char c; read(0, &c, 1) > 0;)
				;
			return 0;
		}
	errno = EINVAL;
	die(name);
	return 2;
}

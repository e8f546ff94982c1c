/*
 * What the consumer's two files share: the device fd and its regions, the driver of the
 * device under test, and the VFIO calls the scenarios (scenarios.c) make.
 */
#ifndef RIG_CONSUMER_H
#define RIG_CONSUMER_H

#include <stdint.h>
#include <sys/types.h>

extern int dev;                 /* the device fd; a scenario may close and reopen it */
extern int one_byte_at_a_time;  /* the device takes one byte per interrupt (after its start) */
extern int non_2_3;             /* vfio takes its non-2.3 INTx path for the device (-p) */

struct driver {
	const char *id;             /* vendor:device in config space, little-endian */
	void (*start)(void);        /* before INTx is wired up (again after a reopen) */
	void (*enable)(void);       /* the device may interrupt from here on */
	int (*service)(void);       /* deassert, consume; bytes read */
	int (*asserted)(void);      /* whether the device drives its INTx line, without
	                               changing anything (no read that deasserts) */
};

void die(const char *what);
void set_irqs(uint32_t flags, int fd);
void intx_off(void);            /* no trigger: vfio frees the IRQ */
void reopen_device(void);       /* close the device fd (vfio's release path) and get it again */
void command_intx_disable(int on);   /* the command register's INTx disable bit, through vfio */
int device_reset(void);         /* VFIO_DEVICE_RESET: 1 done, 0 refused (no reset method) */
int intx_trigger(int fd, int efd);   /* INTx's trigger eventfd of a device fd (-1: off): 0 or errno */
int open_twin(void);            /* the device fd of its twin on the same INTx line */

/* A scenario other than the flow: the rig pushes a byte each time it reads "PUSH". */
int run_scenario(const char *name, const struct driver *drv, int efd);
int scenario_known(const char *name);

#endif

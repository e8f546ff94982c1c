"""The interrupt path: readers of what each layer traced (L0 QEMU's trace events, L1's
ftrace, /proc/interrupts) and the lane model that says where the flow stopped. Pure:
replayable from recorded text."""

"""A kernel the user brings: its file checked for the arch, its version, modules and
configuration, before anything boots it."""

"""The `rig` command line: one module per command, the parser, and the checks on a spec
that need the host."""

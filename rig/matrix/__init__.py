"""The verdict matrix: every cell with its expected verdict, the runner that measures the
rig's agreement with them, and its report."""

"""`python -m rig`: the same as the `rig` command."""

import sys

from rig.commands.cli import main

sys.exit(main())

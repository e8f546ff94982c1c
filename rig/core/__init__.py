"""The ground every other package stands on: errors, time limits, logging, progress,
the validated run spec, the target profiles (arch differences as data), the content-keyed
cache, and the loader of guest shell scripts. Imports nothing of the rig."""

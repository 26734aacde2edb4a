"""The ``pdsim`` command line: the entry point (`sim.cli.main`), text reports and plots."""

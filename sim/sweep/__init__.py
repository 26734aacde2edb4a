"""Design-space sweeps: a spec (`spec`), its points run on Dask with a cache (`execute`), and
the table and Pareto plot they make (`output`). ``pdsim sweep`` is the command
(`sim.cli.sweep`); docs/sweep.md describes the spec."""

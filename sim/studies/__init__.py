"""Reproductions of published studies: each a pure function that computes the numbers and a
writer that regenerates its folder under ``results/`` (README, plot, JSON)."""

"""Parameter grids for ``connote sweep`` (TOML); paper.toml is the grid of the paper."""

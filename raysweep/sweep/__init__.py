"""The sweep service: plan the grid, run trunks and RL trials, record, resume."""

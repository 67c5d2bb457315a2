"""Fault tests: real processes, SIGKILL, restarts on the same data dir."""

"""Tools for operators, run as `python -m shoal.tools.<name>`."""

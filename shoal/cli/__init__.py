"""The `shoal` command (entry point `shoal.cli.app:main`): its subcommands, their
output, and the local cluster `shoal up` runs (which the tests start too)."""

"""`python -m loadtest`: the `shoal loadtest` runner on its own (see loadtest.command)."""

from loadtest.command import main

main()

"""`python -m trivec.cli`: the `trivec` command."""

from trivec.cli import main

main()

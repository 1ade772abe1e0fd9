"""`python -m inlet.cli`: the same as the `inlet` command."""

from inlet.cli import main

main()

"""`python -m compiler` is `flowc`."""

from compiler.cli import main

main()

"""The commands' implementations; compiler/cli.py parses their arguments and calls them."""

"""Tools for card authors, beside the build: `decks new` (scaffold), `decks stats` and the figures.

Only the command line imports this package; the build never does.
"""

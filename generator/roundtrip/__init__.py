"""A round trip with the learner's own Anki: `decks push`, `decks diff --anki` (push) and `decks import`.

Everything goes through Anki's own importer (the `anki` package, imported inside functions so that
`decks --help` stays fast) or AnkiConnect's `importPackage`. Only the command line imports this package.
"""

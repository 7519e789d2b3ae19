"""Build Anki decks for deep-learning interview preparation from Markdown cards."""

__version__ = "0.2.0"

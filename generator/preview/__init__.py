"""The preview: a browsable, isolated site of every card as reviewers will see it (`decks preview`).

`site` builds the pages, `template` renders Anki's card templates, `math` turns TeX into MathML
through an allow-list, `assets` holds the pages' CSS and script, `server` serves the site to
localhost and follows edits. Only the command line imports this package.
"""

"""Running the Python examples on the cards (`decks check --run-code` and the test suite).

`runner` extracts each card's blocks and runs them in a sandboxed child process (`child`), then
compares what they print with the card's output blocks. Only the command line imports this package.
"""

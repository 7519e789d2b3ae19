"""Cloze deletions read the way Anki reads them, so the build counts the cards Anki will make."""

from __future__ import annotations

import re

CLOZE_TOKEN = re.compile(r"\{\{c(\d+)::|\}\}")


def cloze_ordinals(field: str) -> tuple[tuple[int, ...], str | None]:
    """The deletion numbers in a cloze field, in order, and a problem if the markers are unbalanced.

    Anki ends a deletion at the first `}}` and treats a `}}` outside any deletion
    as text. A deletion inside another is refused: older Anki versions show it
    as broken text, and each card should hide one thing.
    """
    ordinals: list[int] = []
    is_open = False
    for token in CLOZE_TOKEN.finditer(field):
        if token.group(1) is not None:
            if is_open:
                return tuple(ordinals), f"cloze deletion {{{{c{token.group(1)}::…}}}} is nested inside another"
            ordinals.append(int(token.group(1)))
            is_open = True
        else:
            is_open = False
    if is_open:
        return tuple(ordinals), f"cloze deletion {{{{c{ordinals[-1]}::…}}}} is never closed with '}}}}'"
    return tuple(ordinals), None

"""`decks import`: a deck made by another tool becomes Markdown cards whose notes keep their GUIDs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.apkg.ids import imported_guid, imported_guid_id, note_guid
from generator.build import build
from generator.cli import main
from generator.roundtrip.deck_import import card_markdown, to_markdown
from tests.conftest import T0


def test_imported_guid_round_trips_through_a_lineage_id() -> None:
    for guid in ("Fz[(Cp/c_N", "b'\"x y", "ünï"):
        lineage = imported_guid_id(guid)
        assert imported_guid(lineage) == guid and note_guid(lineage) == guid
    assert imported_guid("cnn-stride") is None


def test_markdown_keeps_math_and_cloze_markers() -> None:
    assert (
        to_markdown(r"<b>Loss</b> is \(x_1^2\) and {{c1::log_softmax}}")
        == r"**Loss** is \(x_1^2\) and {{c1::log\_softmax}}"
    )
    stem, text = card_markdown(
        "basic", "What is <i>it</i>?", "<p>This.</p>", 'a"b', ["Keep", "marked"], "old", 1, set()
    )
    assert stem == "what-is-it"
    assert text == '---\nid: old-what-is-it\ntags: [keep]\nguid: "a\\"b"\n---\n# What is *it*?\n\nThis.\n'


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _foreign_deck(tmp_path: Path) -> Path:
    """A deck as genanki users make it: random GUIDs, genanki's stock models, an image, a note type of its own."""
    import genanki

    image = tmp_path / "pixel.png"
    image.write_bytes(_png())
    deck = genanki.Deck(2059400110, "Someone's Deck")
    deck.add_note(genanki.Note(genanki.BASIC_MODEL, ["What is a tensor?", 'An n-d array. <img src="pixel.png">']))
    deck.add_note(genanki.Note(genanki.BASIC_AND_REVERSED_CARD_MODEL, ["Epoch", "One pass over the data."]))
    deck.add_note(genanki.Note(genanki.CLOZE_MODEL, ["Adam keeps {{c1::moment estimates}} per weight.", ""]))
    odd = genanki.Model(1607392319, "Three sides", fields=[{"name": "A"}, {"name": "B"}, {"name": "C"}],
                        templates=[{"name": "t", "qfmt": "{{A}}", "afmt": "{{B}}{{C}}"}])  # fmt: skip
    deck.add_note(genanki.Note(odd, ["a", "b", "c"]))
    package = tmp_path / "theirs.apkg"
    genanki.Package(deck, media_files=[str(image)]).write_to_file(str(package))
    return package


@pytest.mark.slow
def test_imported_deck_builds_and_replaces_the_original_without_losing_history(
    content: Path, tmp_path: Path, collection_factory
) -> None:
    from tests.anki_support import answer_cards, import_package, scheduling_state

    original = _foreign_deck(tmp_path)
    collection = collection_factory()
    assert import_package(collection, original).new == 4
    answer_cards(collection, "Someone's Deck", 3)
    reviewed = scheduling_state(collection)
    revlog = collection.db.scalar("select count() from revlog")
    guids = set(collection.db.list("select guid from notes"))

    result = CliRunner().invoke(main, ["import", "--content", str(content), str(original), "--topic", "theirs"])
    assert result.exit_code == 0, result.output
    assert "not imported (other note type) Three sides: 1 notes" in result.output
    assert "wrote 3 cards and 1 images" in result.output
    cards = sorted((content / "theirs").glob("*.md"))
    texts = {p.stem: p.read_text(encoding="utf-8") for p in cards}
    assert set(texts) == {"what-is-a-tensor", "epoch", "adam-keeps-per-weight"}
    assert "type: reversed" in texts["epoch"] and "type: cloze" in texts["adam-keeps-per-weight"]
    assert "{{c1::moment estimates}}" in texts["adam-keeps-per-weight"]
    assert "![](figures/pixel.png)" in texts["what-is-a-tensor"]
    assert (content / "theirs" / "figures" / "pixel.png").read_bytes() == _png()
    assert all("guid: " in text for text in texts.values())

    dist = tmp_path / "dist"
    build(content, dist, T0)
    ours = collection_factory()
    import_package(ours, dist / "all-topics.apkg")
    shipped = set(ours.db.list("select guid from notes"))
    assert len(shipped) == 3 and shipped <= guids  # the build ships the original GUIDs

    log = import_package(collection, dist / "all-topics.apkg")
    assert log.new == 0  # no duplicates: every note is recognised by its GUID
    # With merge off, the originals keep their own note types, so Anki reports them as conflicting.
    assert log.conflicting == 3
    assert collection.note_count() == 4
    assert set(collection.db.list("select guid from notes")) == guids
    after = scheduling_state(collection)
    assert all(after[card] == state for card, state in reviewed.items())
    assert collection.db.scalar("select count() from revlog") == revlog

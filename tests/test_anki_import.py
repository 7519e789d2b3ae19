"""Import built packages into a real Anki collection and look at the result."""

from __future__ import annotations

from pathlib import Path

import pytest

import generator.apkg.notetype
from generator.apkg.ids import note_guid
from generator.build import build
from tests.anki_support import CardAnswer, answer_cards, import_package, notes_by_guid, rendered, scheduling_state
from tests.conftest import T0, WriteCard
from tests.test_images import ONE_PIXEL_PNG

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sample_cards")]  # real Anki imports


def test_every_package_imports_with_right_counts_and_html(content: Path, tmp_path: Path, collection_factory) -> None:
    dist = tmp_path / "dist"
    build(content, dist, T0)
    expected = {"alpha.apkg": (3, 3), "beta.apkg": (2, 4), "all-topics.apkg": (5, 7)}
    for name, (notes, cards) in expected.items():
        collection = collection_factory()
        log = import_package(collection, dist / name)
        assert (log.new, log.updated, log.conflicting) == (notes, 0, 0)
        assert collection.note_count() == notes
        assert collection.card_count() == cards
        for _deck, question, answer in rendered(collection):
            assert "has a problem" not in question + answer
        check = collection.media.check()
        assert (list(check.missing), list(check.unused)) == ([], [])

    collection = collection_factory()
    import_package(collection, dist / "all-topics.apkg")
    decks = sorted(d.name for d in collection.decks.all_names_and_ids() if d.name.startswith("Test Decks::"))
    assert decks == ["Test Decks::Alpha Topic", "Test Decks::Beta Topic"]
    by_deck = rendered(collection)
    html = "\n".join(q + a for _, q, a in by_deck)
    # Code highlighted with classes, math delimiters untouched by Markdown.
    assert '<div class="highlight language-python"><pre><span></span><code><span class="kn">import</span>' in html
    assert r"\[\sigma(x) = \frac{1}{1 + e^{-x}}\]" in html
    assert r"\(\sigma'(x) = \sigma(x)(1-\sigma(x))\)" in html
    assert "<em>emphasis</em>" in html
    assert "<td>sparse</td>" in html
    # The cloze's math had its `}}` split so the deletion ends where it should.
    cloze_questions = [q for _, q, _ in by_deck if "Softmax maps" in q]
    assert len(cloze_questions) == 2
    assert any(r"\(\frac{e^{z_i} }{\sum_j e^{z_j} }\)" in q for q in cloze_questions)
    assert all("[...]" in q for q in cloze_questions)
    # The reversed note asks both ways.
    epoch = [(q, a) for _, q, a in by_deck if "One full pass" in q + a]
    assert len(epoch) == 2
    assert any(q.startswith('<div class="answer"><p>One full pass') for q, _ in epoch)


def test_images_are_packed_by_content_hash(content: Path, write_card: WriteCard, tmp_path: Path, collection_factory):
    (content / "alpha" / "diagram.png").write_bytes(ONE_PIXEL_PNG)
    write_card("alpha", "pic", "id: alpha-pic\ntags: []\nsource: [s#1]", "# Q?\n\n![a diagram](diagram.png)\n")
    dist = tmp_path / "dist"
    build(content, dist, T0)
    collection = collection_factory()
    import_package(collection, dist / "alpha.apkg")
    note_id = notes_by_guid(collection)[note_guid("alpha-pic")][0]
    back = collection.get_note(note_id)["Back"]
    assert '<img alt="a diagram" src="diagram-' in back
    media = sorted(p.name for p in Path(collection.media.dir()).iterdir())
    assert len(media) == 1 and media[0].startswith("diagram-") and media[0] in back
    check = collection.media.check()
    assert (list(check.missing), list(check.unused)) == ([], [])


def test_upgrade_keeps_history_and_applies_edits(
    content: Path, write_card: WriteCard, tmp_path: Path, collection_factory, monkeypatch
) -> None:
    dist = tmp_path / "dist"
    build(content, dist, T0)
    collection = collection_factory()
    assert import_package(collection, dist / "all-topics.apkg").new == 5
    answered = answer_cards(collection, "Test Decks", 4) + answer_cards(collection, "Test Decks", 1, CardAnswer.EASY)
    assert len(set(answered)) >= 4
    before = scheduling_state(collection)
    notes_before = notes_by_guid(collection)
    revlog_before = collection.db.all("select id, cid, ease, ivl from revlog order by id")
    assert len(revlog_before) == 5

    # Release 2: two edits, one new card, a CSS change.
    write_card(
        "alpha",
        "sigmoid",
        "id: alpha-sigmoid\ntags: [math]\nsource: [seed.txt#2]",
        "# What is the sigmoid function?\n\n$$\\sigma(x) = 1 / (1 + e^{-x})$$ (edited)\n",
    )
    write_card("beta", "reversed", "id: beta-epoch\ntags: [concept]\ntype: reversed", "# Epoch\n\nOne pass (edited).\n")
    write_card("beta", "new", "id: beta-new\ntags: [concept]\nsource: [s#9]", "# A new question?\n\nA new answer.\n")
    released_stylesheet = generator.apkg.notetype.stylesheet
    monkeypatch.setattr(generator.apkg.notetype, "stylesheet", lambda: released_stylesheet() + ".release-two { }\n")
    build(content, dist, T0 + 3600)

    log = import_package(collection, dist / "all-topics.apkg")
    assert (log.new, log.conflicting) == (1, 0)
    notes_after = notes_by_guid(collection)
    assert len(notes_after) == 6
    for guid, (note_id, _fields, _mod) in notes_before.items():
        assert notes_after[guid][0] == note_id
    assert "(edited)" in notes_after[note_guid("alpha-sigmoid")][1][1]
    assert "One pass (edited)." in notes_after[note_guid("beta-epoch")][1][1]
    after = scheduling_state(collection)
    for card_id, state in before.items():
        assert after[card_id] == state
    assert collection.db.all("select id, cid, ease, ivl from revlog order by id") == revlog_before
    for model_id in (1246741619, 1129797610, 1969982484):
        assert ".release-two" in collection.models.get(model_id)["css"]
    names = [m.name for m in collection.models.all_names_and_ids()]
    assert not any(name.endswith("+") for name in names)
    assert any("(edited)" in a for _, _, a in rendered(collection))


def test_unchanged_rebuild_keeps_users_local_edits(content: Path, tmp_path: Path, collection_factory) -> None:
    dist = tmp_path / "dist"
    build(content, dist, T0)
    collection = collection_factory()
    import_package(collection, dist / "alpha.apkg")
    note_id = notes_by_guid(collection)[note_guid("alpha-table")][0]
    note = collection.get_note(note_id)
    note["Back"] = "my own notes"
    collection.update_note(note)

    build(content, dist, T0 + 3600)  # nothing changed
    log = import_package(collection, dist / "alpha.apkg")
    assert (log.new, log.updated) == (0, 0)
    assert collection.get_note(note_id)["Back"] == "my own notes"


def test_committed_release_imports_cleanly(collection_factory) -> None:
    """The real decks in dist/: every package imports with the manifest's counts and renders."""
    import json

    dist = Path(__file__).resolve().parents[1] / "dist"
    manifest = json.loads((dist / "manifest.json").read_text())
    for deck in manifest["decks"]:
        collection = collection_factory()
        log = import_package(collection, dist / deck["file"])
        assert (log.new, log.conflicting) == (deck["notes"], 0)
        assert (collection.note_count(), collection.card_count()) == (deck["notes"], deck["cards"])
        assert {deck_name for deck_name, _, _ in rendered(collection)} == {deck["name"]}

    collection = collection_factory()
    log = import_package(collection, dist / "all-topics.apkg")
    assert log.new == len(manifest["cards"])
    cards = rendered(collection)
    assert len(cards) == sum(d["cards"] for d in manifest["decks"])
    for _deck, question, answer in cards:
        assert "has a problem" not in question + answer
        assert "$$" not in question + answer  # all math reached MathJax as \( \) or \[ \]
    html = "\n".join(q + a for _, q, a in cards)
    assert html.count('<div class="highlight language-python">') >= 150
    assert html.count("\\(") >= 300
    check = collection.media.check()
    assert (list(check.missing), list(check.unused)) == ([], [])

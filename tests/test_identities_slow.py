"""The ledger's invariants under random edit sequences, and a replay through the real Anki importer."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from generator.build import Options, build
from generator.diagnostics import BuildFailed
from tests.conftest import T0
from tests.test_identities import notes, write

pytestmark = pytest.mark.slow
DAY = 86_400


@dataclass(frozen=True)
class Card:
    """A card as the maintainer declared it: `token` names the note its ids say it continues."""

    path: str
    id: str
    question: str
    answer: str
    previous: tuple[str, ...]
    token: int


@dataclass
class Model:
    cards: dict[str, Card] = field(default_factory=dict)  # by path
    released_ids: dict[str, int] = field(default_factory=dict)  # every id a release shipped -> its token
    guid_of: dict[int, str] = field(default_factory=dict)  # token -> GUID, fixed at its first release
    last_release: set[str] = field(default_factory=set)  # the ids the latest release shipped
    counter: int = 0

    def fresh(self) -> int:
        self.counter += 1
        return self.counter


class LedgerMachine(RuleBasedStateMachine):
    """Edits a small tree at random; after every release, checks the packages against the declared lineages."""

    @initialize()
    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp())
        self.content = self.root / "content"
        self.dist = self.root / "dist"
        self.content.mkdir()
        (self.content / "deckset.yaml").write_text("name: Test Decks\n")
        for order, key in enumerate(("alpha", "beta")):
            (self.content / key).mkdir()
            (self.content / key / "topic.yaml").write_text(f"name: {key.title()}\ndescription: d\norder: {order}\n")
        self.model = Model()
        self.now = T0
        self.releases = 0

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # --- edits: each is applied, then a draft build accepts it or the edit is undone -------------

    def _apply(self, before: dict[str, Card], after: dict[str, Card]) -> None:
        for path in before.keys() - after.keys():
            (self.content / path).unlink()
        for card in after.values():
            if before.get(card.path) != card:
                write(self.content, card.path, card.id, card.question, card.answer, ", ".join(card.previous))
        self.now += 60
        try:
            build(self.content, self.dist, self.now)
        except BuildFailed:
            self._apply_quietly(after, before)
            return
        self.model.cards = after

    def _apply_quietly(self, current: dict[str, Card], target: dict[str, Card]) -> None:
        for path in current.keys() - target.keys():
            (self.content / path).unlink()
        for card in target.values():
            write(self.content, card.path, card.id, card.question, card.answer, ", ".join(card.previous))

    def _edit(self, where: str, **changes: object) -> None:
        before = dict(self.model.cards)
        after = dict(before)
        after.pop(where)
        card = replace(before[where], **changes)  # type: ignore[arg-type]
        after[card.path] = card
        self._apply(before, after)

    @rule(topic=st.sampled_from(["alpha", "beta"]))
    def add(self, topic: str) -> None:
        n = self.model.fresh()
        card = Card(f"{topic}/c{n}.md", f"{topic}-c{n}", f"Question {n}?", "An answer.", (), n)
        self._apply(dict(self.model.cards), {**self.model.cards, card.path: card})

    @precondition(lambda self: self.model.cards)
    @rule(data=st.data())
    def edit_answer(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.model.cards)))
        self._edit(path, answer=f"Answer {self.model.fresh()}.")

    @precondition(lambda self: self.model.cards)
    @rule(data=st.data())
    def reword(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.model.cards)))
        self._edit(path, question=f"Reworded {self.model.fresh()}?")

    @precondition(lambda self: self.model.cards)
    @rule(data=st.data())
    def move(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.model.cards)))
        topic = "beta" if path.startswith("alpha") else "alpha"
        self._edit(path, path=f"{topic}/m{self.model.fresh()}.md")

    @precondition(lambda self: self.model.cards)
    @rule(data=st.data(), declared=st.booleans())
    def rename(self, data: st.DataObject, declared: bool) -> None:
        path = data.draw(st.sampled_from(sorted(self.model.cards)))
        card = self.model.cards[path]
        new_id = f"{path.split('/')[0]}-r{self.model.fresh()}"
        if declared:  # the same note under a new id
            self._edit(path, id=new_id, previous=(*card.previous, card.id))
        else:  # declared as a different card: a new lineage
            self._edit(path, id=new_id, previous=(), token=self.model.fresh())

    @precondition(lambda self: any(c.previous for c in self.model.cards.values()))
    @rule(data=st.data())
    def drop_previous_ids(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(p for p, c in self.model.cards.items() if c.previous)))
        card = self.model.cards[path]
        # Dropping the line keeps the lineage only where the current id was released for it.
        token = card.token if self.model.released_ids.get(card.id) == card.token else self.model.fresh()
        self._edit(path, previous=(), token=token)

    @precondition(lambda self: len(self.model.cards) >= 2)
    @rule(data=st.data())
    def swap_ids(self, data: st.DataObject) -> None:
        first, second = data.draw(st.lists(st.sampled_from(sorted(self.model.cards)), min_size=2, max_size=2,
                                           unique=True))  # fmt: skip
        a, b = self.model.cards[first], self.model.cards[second]
        before = dict(self.model.cards)
        after = {**before, first: replace(a, id=b.id, previous=b.previous, token=b.token),
                 second: replace(b, id=a.id, previous=a.previous, token=a.token)}  # fmt: skip
        self._apply(before, after)

    @precondition(lambda self: self.model.cards)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.model.cards)))
        before = dict(self.model.cards)
        self._apply(before, {p: c for p, c in before.items() if p != path})

    @precondition(lambda self: self.model.released_ids)
    @rule(data=st.data(), declared=st.booleans())
    def readd_released(self, data: st.DataObject, declared: bool) -> None:
        old_id = data.draw(st.sampled_from(sorted(self.model.released_ids)))
        n = self.model.fresh()
        token = self.model.released_ids[old_id] if declared else n
        card = Card(f"alpha/a{n}.md", f"alpha-a{n}", f"Question {n}?", "Back.", (old_id,) if declared else (), token)
        self._apply(dict(self.model.cards), {**self.model.cards, card.path: card})

    @precondition(lambda self: set(self.model.released_ids) - {c.id for c in self.model.cards.values()})
    @rule(data=st.data())
    def reuse_released_id(self, data: st.DataObject) -> None:
        """A new file takes an id a release shipped that no card uses now.

        Still live in the last release (only a draft dropped it): the id names that note, so this
        is the same note, moved and reworded. Renamed or removed by a release: a newcomer, which
        the build must refuse.
        """
        free = sorted(set(self.model.released_ids) - {c.id for c in self.model.cards.values()})
        old_id = data.draw(st.sampled_from(free))
        n = self.model.fresh()
        token = self.model.released_ids[old_id] if old_id in self.model.last_release else n
        card = Card(f"beta/u{n}.md", old_id, f"Newcomer {n}?", "Back.", (), token)
        self._apply(dict(self.model.cards), {**self.model.cards, card.path: card})

    @rule()
    def release(self) -> None:
        self.now += DAY
        try:
            build(self.content, self.dist, self.now, options=Options(allow_removal=True), release="auto")
        except BuildFailed as failure:
            assert "nothing to release" in str(failure), str(failure)
            return
        self.releases += 1
        shipped = notes(self.dist / "all-topics.apkg")
        by_id = {card.id: card for card in self.model.cards.values()}
        assert sorted(card_id for card_id, _ in shipped.values()) == sorted(by_id)
        for guid, (card_id, front) in shipped.items():
            card = by_id[card_id]
            assert front == card.question
            expected = self.model.guid_of.setdefault(card.token, guid)
            assert guid == expected, f"{card_id} left its lineage"
            self.model.released_ids[card_id] = card.token
        self.model.last_release = set(by_id)
        tokens = [c.token for c in self.model.cards.values()]
        assert len(set(tokens)) == len(tokens)

    @invariant()
    def guids_never_change_hands(self) -> None:
        if hasattr(self, "model"):
            owners = list(self.model.guid_of.values())
            assert len(set(owners)) == len(owners), "one GUID served two lineages"


LedgerMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=16, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_random_edit_sequences_keep_every_history_with_its_lineage = LedgerMachine.TestCase


# --- the same routes, replayed through Anki's own importer ------------------------------------------


def test_anki_replay_keeps_each_review_log_with_the_question_it_was_answered_on(
    content: Path, tmp_path: Path, collection_factory
) -> None:
    from tests.anki_support import answer_cards, import_package

    dist = tmp_path / "dist"
    collection = collection_factory()

    def release(now: int) -> None:
        build(content, dist, now, options=Options(allow_removal=True), release="auto")
        log = import_package(collection, dist / "all-topics.apkg")
        assert log.conflicting == 0

    def lineage_of_reviews() -> dict[int, str]:
        """Per reviewed note: the token at the start of its Id field's lineage (the question's first words)."""
        rows = collection.db.all(
            "select distinct n.id, n.flds from revlog r join cards c on c.id = r.cid join notes n on n.id = c.nid"
        )
        return {note_id: fields.split("\x1f")[0] for note_id, fields in rows}

    for name in ("a", "b", "c", "d"):
        write(content, f"alpha/{name}.md", f"alpha-{name}", f"Topic {name} question?")
    release(T0)
    answer_cards(collection, "Test Decks", 4)
    answered = lineage_of_reviews()
    assert len(answered) == 4

    # Rename a (declared), remove c.
    write(content, "alpha/a.md", "alpha-renamed", "Topic a question?", previous="alpha-a")
    (content / "alpha" / "c.md").unlink()
    release(T0 + DAY)
    # The rename's previous_ids line is dropped and alpha-a is reused: refused.
    write(content, "alpha/a.md", "alpha-renamed", "Topic a question?")
    write(content, "alpha/new.md", "alpha-a", "A newcomer?")
    with pytest.raises(BuildFailed):
        build(content, dist, T0 + 2 * DAY)
    (content / "alpha" / "new.md").unlink()
    # Two files swap ids: refused.
    write(content, "alpha/b.md", "alpha-d", "Topic b question?")
    write(content, "alpha/d.md", "alpha-b", "Topic d question?")
    with pytest.raises(BuildFailed):
        build(content, dist, T0 + 2 * DAY)
    write(content, "alpha/b.md", "alpha-b", "Topic b question?")
    write(content, "alpha/d.md", "alpha-d", "Topic d question?")
    # The removed question comes back without being declared: refused; declared: revived.
    write(content, "beta/c2.md", "beta-c2", "Topic c question?")
    with pytest.raises(BuildFailed):
        build(content, dist, T0 + 2 * DAY)
    write(content, "beta/c2.md", "beta-c2", "Topic c question?", previous="alpha-c")
    # d moves to another topic under a new id, reworded, declared.
    (content / "alpha" / "d.md").unlink()
    write(content, "beta/d2.md", "beta-d2", "Topic d question, reworded?", previous="alpha-d")
    release(T0 + 3 * DAY)

    rows = collection.db.all("select id, flds from notes")
    assert len(rows) == 4, "no duplicates: every note is the one users reviewed"
    after = {note_id: fields.split("\x1f")[0] for note_id, fields in rows}
    for note_id, question in answered.items():
        # Each review log still hangs on a note that asks (a rewording of) the question it was answered on.
        assert after[note_id].split(" question")[0] == question.split(" question")[0], (question, after[note_id])

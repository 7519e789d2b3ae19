"""`decks push` and `decks diff --anki` against real Anki collections (the `anki` package's own importer)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from generator.build import build
from generator.cli import main
from generator.roundtrip.push import LOCKED, RETIRED_TAG, html_to_text, id_field_search
from tests.conftest import T0, WriteCard

DAY = 86_400


def test_html_to_text_is_readable_and_symmetric() -> None:
    assert html_to_text("<p>One &amp; <b>two</b></p><ul><li>a</li><li>b</li></ul>") == "One & two\n\n- a\n\n- b"
    assert html_to_text('<pre><code>x  =  1\n  y</code></pre><img src="f.png">') == "x  =  1\n  y\n[image: f.png]"


def test_id_field_search_escapes_what_anki_escapes() -> None:
    assert id_field_search("cnn-stride") == '"Id:cnn-stride"'
    assert id_field_search('a_b*c"d\\e') == '"Id:a\\_b\\*c\\"d\\\\e"'


# --- real Anki -------------------------------------------------------------------------------------


def _card(write_card: WriteCard, name: str, answer: str, topic: str = "alpha") -> None:
    write_card(topic, name, f"id: card-{name}\ntags: [concept]\nsource: [s#1]", f"# Question {name}?\n\n{answer}\n")


def _new_collection(tmp_path: Path, name: str = "anki") -> Path:
    from anki.collection import Collection

    folder = tmp_path / name
    folder.mkdir()
    path = folder / "collection.anki2"
    Collection(str(path)).close()
    return path


def _push(dist: Path, collection: Path, *args: str, input: str | None = None) -> Any:
    result = CliRunner().invoke(
        main, ["push", "--dist", str(dist), "--collection", str(collection), *args], input=input
    )
    return result


@pytest.fixture
def built(content: Path, write_card: WriteCard, tmp_path: Path) -> Path:
    for index in range(3):
        _card(write_card, f"c{index}", "Answer v1.")
    dist = tmp_path / "dist"
    build(content, dist, T0)
    return dist


@pytest.mark.slow
def test_push_then_manual_import_of_the_same_file_changes_nothing(built: Path, tmp_path: Path) -> None:
    from anki.collection import Collection

    from tests.anki_support import import_package

    path = _new_collection(tmp_path)
    result = _push(built, path)
    assert result.exit_code == 0, result.output
    assert "3 new, 0 updated, 0 unchanged, 0 skipped (edited in Anki), 0 conflicting, 0 retired" in result.output
    assert "backed up the collection to" in result.output
    assert list(path.parent.glob("collection.anki2.decks-backup-*"))
    collection = Collection(str(path))
    try:
        log = import_package(collection, built / "all-topics.apkg")
        assert (log.new, log.updated) == (0, 0)
        assert collection.note_count() == 3
    finally:
        collection.close()
    again = _push(built, path)
    assert "0 new, 0 updated, 3 unchanged" in again.output


@pytest.mark.slow
def test_push_of_a_changed_build_keeps_reviews_and_protects_edits_made_in_anki(
    built: Path, content: Path, write_card: WriteCard, tmp_path: Path
) -> None:
    from anki.collection import Collection

    from tests.anki_support import answer_cards, notes_by_guid, scheduling_state

    path = _new_collection(tmp_path)
    assert _push(built, path).exit_code == 0
    collection = Collection(str(path))
    answer_cards(collection, "Test Decks", 3)
    reviewed = scheduling_state(collection)
    revlog = collection.db.scalar("select count() from revlog")
    # The learner fixes c2 in Anki (its mod becomes now, later than the build's).
    note = collection.get_note(collection.find_notes('"Id:card-c2"')[0])
    note["Back"] = "<p>Answer fixed in Anki.</p>"
    collection.update_note(note)
    collection.close()

    _card(write_card, "c0", "Answer v2.")  # changed in the sources
    _card(write_card, "c9", "Brand new.")
    (content / "alpha" / "c1.md").unlink()  # gone from the build: retired
    build(content, built, T0 + DAY)
    result = _push(built, path)
    assert result.exit_code == 0, result.output
    assert "1 new, 1 updated, 0 unchanged, 1 skipped (edited in Anki), 0 conflicting, 1 retired" in result.output
    assert "skipped, edited in Anki (see 'decks diff --anki'; --force overwrites): card-c2" in result.output

    collection = Collection(str(path))
    try:
        fields = {f[2]: f for _, f, _ in notes_by_guid(collection).values()}
        assert fields["card-c0"][1] == "<p>Answer v2.</p>"
        assert fields["card-c2"][1] == "<p>Answer fixed in Anki.</p>"  # the learner's edit survived
        assert len(fields) == 4 and collection.note_count() == 4  # no duplicates
        after = scheduling_state(collection)
        assert all(after[card] == state for card, state in reviewed.items())
        assert collection.db.scalar("select count() from revlog") == revlog
        retired = collection.find_notes(f"tag:{RETIRED_TAG}")
        assert [collection.get_note(n)["Id"] for n in retired] == ["card-c1"]
    finally:
        collection.close()

    diff = CliRunner().invoke(
        main, ["diff", "--anki", "--content", str(content), "--dist", str(built), "--collection", str(path)]
    )
    assert diff.exit_code == 0, diff.output
    assert f"{content / 'alpha' / 'c2.md'}: field Back differs in Anki" in diff.output
    assert "-Answer v1.\n+Answer fixed in Anki." in diff.output
    assert "1 cards differ in Anki" in diff.output

    forced = _push(built, path, "--force", "--prune", input="y\n")
    assert forced.exit_code == 0, forced.output
    assert "overwritten, was edited in Anki: card-c2" in forced.output
    assert "deleted: card-c1" in forced.output
    collection = Collection(str(path))
    try:
        fields = {f[2]: f for _, f, _ in notes_by_guid(collection).values()}
        assert fields["card-c2"][1] == "<p>Answer v1.</p>"
        assert set(fields) == {"card-c0", "card-c2", "card-c9"}
    finally:
        collection.close()


@pytest.mark.slow
def test_push_while_another_process_holds_the_collection_is_a_one_line_error(built: Path, tmp_path: Path) -> None:
    path = _new_collection(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from anki.collection import Collection; c = Collection({str(path)!r}); "
         "print('open', flush=True); import time; time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        result = _push(built, path)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert result.exit_code == 1
    assert result.output == f"Error: {LOCKED}\n"
    assert "--via ankiconnect" in result.output
    assert not list(path.parent.glob("*.decks-backup-*"))  # nothing copied, nothing edited


@pytest.mark.slow
def test_release_111_users_get_field_and_template_ids_without_a_copied_note_type(content: Path, tmp_path: Path) -> None:
    from anki.collection import Collection

    from generator.apkg.notetype import note_types
    from tests.anki_support import import_package

    repo = Path(__file__).resolve().parents[1]
    old = tmp_path / "r111.apkg"
    shown = subprocess.run(["git", "-C", str(repo), "show", "2ebbf54:dist/all-topics.apkg"], capture_output=True)
    if shown.returncode != 0:
        pytest.skip("release 1.1.1 is not in this clone's history")
    old.write_bytes(shown.stdout)
    dist = tmp_path / "dist"
    import shutil

    shutil.copytree(repo / "content", content, dirs_exist_ok=True)
    shutil.copy(repo / "dist" / "manifest.json", tmp_path / "manifest.json")
    dist.mkdir()
    shutil.copy(tmp_path / "manifest.json", dist / "manifest.json")
    for name in ("identities.json", "CHANGELOG.md"):
        if (repo / "dist" / name).exists():
            shutil.copy(repo / "dist" / name, dist / name)
    build(content, dist, 1_900_000_000)

    collection = Collection(str(tmp_path / "collection.anki2"))
    try:
        assert import_package(collection, old).new > 0
        before = {m["id"] for m in collection.models.all()}
        log = import_package(collection, dist / "all-topics.apkg")
        assert log.conflicting == 0
        collection.models._clear_cache()
        models = {m["id"]: m for m in collection.models.all()}
        assert set(models) == before  # no "+" copy, same note-type ids
        for note_type in note_types().values():
            stored = models[note_type.model_id]
            assert [f["id"] for f in stored["flds"]] == list(note_type.field_ids)
            assert [t["id"] for t in stored["tmpls"]] == list(note_type.template_ids)
    finally:
        collection.close()


# --- AnkiConnect: a recorded contract of the add-on's actions, run on a real collection ---------------


class _FakeAnkiConnect(BaseHTTPRequestHandler):
    """AnkiConnect 6 as the add-on implements these actions (importPackage is `anki.importing`'s importer)."""

    collection: Any = None
    requests: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        action, params = request["action"], request.get("params", {})
        type(self).requests.append((action, params))
        try:
            reply = {"result": self.act(action, params), "error": None}
        except Exception as exc:  # noqa: BLE001 (AnkiConnect turns every failure into an error reply)
            reply = {"result": None, "error": str(exc)}
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def act(self, action: str, params: dict[str, Any]) -> Any:
        col = type(self).collection
        if action == "version":
            return 6
        if action == "apiReflect":
            known = {"version", "apiReflect", "importPackage", "findNotes", "notesInfo", "addTags", "deleteNotes"}
            return {"scopes": ["actions"], "actions": [a for a in params["actions"] if a in known]}
        if action == "importPackage":
            from anki.importing import AnkiPackageImporter  # what the add-on calls

            AnkiPackageImporter(col, params["path"]).run()
            return True
        if action == "findNotes":
            return list(col.find_notes(params["query"]))
        if action == "notesInfo":
            result = []
            for nid in params["notes"]:
                note = col.get_note(nid)
                model = note.note_type()
                fields = {f["name"]: {"value": note.fields[f["ord"]], "order": f["ord"]} for f in model["flds"]}
                result.append({"noteId": note.id, "tags": note.tags, "fields": fields, "modelName": model["name"],
                               "mod": note.mod, "cards": list(note.card_ids())})  # fmt: skip
            return result
        if action == "addTags":
            col.tags.bulk_add(params["notes"], params["tags"])
            return None
        if action == "deleteNotes":
            col.remove_notes(params["notes"])
            return None
        raise Exception("unsupported action")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ankiconnect(tmp_path: Path) -> Iterator[tuple[str, type[_FakeAnkiConnect]]]:
    from anki.collection import Collection

    handler = type("Handler", (_FakeAnkiConnect,), {"requests": []})
    handler.collection = Collection(str(_new_collection(tmp_path, "running")))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    handler.collection.close()


@pytest.mark.slow
def test_push_via_ankiconnect_imports_the_package_and_protects_edits(
    built: Path, content: Path, write_card: WriteCard, ankiconnect: tuple[str, type[_FakeAnkiConnect]]
) -> None:
    from tests.anki_support import answer_cards, scheduling_state

    url, server = ankiconnect
    push = ["push", "--dist", str(built), "--via", "ankiconnect", "--url", url]
    first = CliRunner().invoke(main, push)
    assert first.exit_code == 0, first.output
    assert "3 new, 0 updated, 0 unchanged" in first.output
    actions = [a for a, _ in server.requests]
    assert actions[:2] == ["version", "apiReflect"]
    assert actions.count("importPackage") == 1
    imported = next(p for a, p in server.requests if a == "importPackage")
    assert imported == {"path": str((built / "all-topics.apkg").resolve())}
    assert Path(imported["path"]).is_absolute()
    assert not {"addNote", "addNotes", "updateNoteModel", "createModel", "updateNoteFields"} & set(actions)

    col = server.collection
    answer_cards(col, "Test Decks", 3)
    reviewed = scheduling_state(col)
    note = col.get_note(col.find_notes('"Id:card-c2"')[0])
    note["Back"] = "<p>Edited in Anki.</p>"
    col.update_note(note)

    _card(write_card, "c0", "Answer v2.")
    build(content, built, T0 + DAY)
    second = CliRunner().invoke(main, push)
    assert second.exit_code == 0, second.output
    assert "0 new, 1 updated, 1 unchanged, 1 skipped (edited in Anki), 0 conflicting, 0 retired" in second.output
    assert col.get_note(note.id)["Back"] == "<p>Edited in Anki.</p>"
    assert col.note_count() == 3
    after = scheduling_state(col)
    assert all(after[card] == state for card, state in reviewed.items())

    refused = CliRunner().invoke(main, [*push, "--force"])
    assert refused.exit_code == 1 and "--force needs the direct transport" in refused.output

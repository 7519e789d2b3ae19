"""Hostile contributions: each gets a located error, exit 1, and dist/ stays byte for byte as it was."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator.cli import main
from tests.conftest import T0

GOOD = "---\nid: alpha-good\ntags: [concept]\nsource: [alpha]\n---\n# A question?\n\nAn answer.\n"
Plant = Callable[[Path, Path], None]  # (content folder, a folder outside it)


def card(body: str, name: str = "bad") -> Plant:
    def plant(content: Path, _outside: Path) -> None:
        (content / "alpha" / f"{name}.md").write_text(
            f"---\nid: alpha-{name}\ntags: [concept]\nsource: [alpha]\n---\n{body}", encoding="utf-8"
        )

    return plant


def symlinked_image(content: Path, outside: Path) -> None:
    (content / "alpha" / "pic.png").symlink_to(outside / "secret.png")
    card("# Q?\n\n![x](pic.png)\n")(content, outside)


def symlinked_image_folder(content: Path, outside: Path) -> None:
    (content / "alpha" / "img").symlink_to(outside)
    card("# Q?\n\n![x](img/secret.png)\n")(content, outside)


def symlinked_topic(content: Path, outside: Path) -> None:
    (outside / "topic.yaml").write_text("name: Evil\ndescription: d\norder: 5\n")
    (content / "evil").symlink_to(outside)


def symlinked_card(content: Path, outside: Path) -> None:
    (content / "alpha" / "linked.md").symlink_to(outside / "card.md")


def raw(name: str, data: bytes) -> Plant:
    def plant(content: Path, _outside: Path) -> None:
        (content / "alpha" / name).write_bytes(data)

    return plant


def topic_yaml(text: str) -> Plant:
    def plant(content: Path, _outside: Path) -> None:
        (content / "beta" / "topic.yaml").write_text(text, encoding="utf-8")

    return plant


def folder_named_card(content: Path, _outside: Path) -> None:
    (content / "alpha" / "x.md").mkdir()


def dangling(content: Path, _outside: Path) -> None:
    (content / "alpha" / "gone.md").symlink_to(content / "alpha" / "nowhere.md")


def looping(content: Path, _outside: Path) -> None:
    (content / "alpha" / "loop.md").symlink_to(content / "alpha" / "loop.md")


def subfolder_card(content: Path, _outside: Path) -> None:
    (content / "alpha" / "sub").mkdir()
    (content / "alpha" / "sub" / "deep.md").write_text(GOOD)


def manifest(text: str) -> Plant:
    def plant(_content: Path, _outside: Path) -> None:
        raise _ReplaceManifest(text)

    return plant


def manifest_edit(old: str, new: str) -> Plant:
    def plant(content: Path, _outside: Path) -> None:
        text = (content.parent / "dist" / "manifest.json").read_text()
        assert old in text
        raise _ReplaceManifest(text.replace(old, new))

    return plant


class _ReplaceManifest(Exception):
    def __init__(self, text: str) -> None:
        self.text = text


DEEP_CLOZE = (
    "---\nid: alpha-deep\ntags: [x]\nsource: [alpha]\ntype: cloze\n---\n# T\n\n" + "{{c1::" * 3000 + "x" + "}}" * 3000
)
NESTED_LIST = "".join("    " * i + "- x\n" for i in range(600))

CASES = [
    pytest.param(
        card("# Q?\n\n![x](../../outside/secret.png)\n"),
        "bad.md:8:6: error: image '../../outside/secret.png' lies outside the content folder",
        id="traversal",
    ),
    pytest.param(
        card("# Q?\n\n![x](../../../../../../../../etc/passwd)\n"),
        "error: image '../../../../../../../",
        id="traversal-etc",
    ),
    pytest.param(card("# Q?\n\n![x](/proc/self/environ)\n"), "is not a file next to the card", id="absolute-path"),
    pytest.param(symlinked_image, "lies outside the content folder", id="symlinked-image"),
    pytest.param(
        card('# Q?\n\n<img src="../../outside/secret.png">\n'),
        "bad.md:8:11: error: image '../../outside/secret.png' lies outside the content folder",
        id="raw-html-image-traversal",
    ),
    pytest.param(symlinked_image_folder, "lies outside the content folder", id="symlinked-image-folder"),
    pytest.param(symlinked_topic, "evil:1:1: error: symlink to", id="symlinked-topic"),
    pytest.param(symlinked_card, "linked.md:1:1: error: symlink to", id="symlinked-card"),
    pytest.param(
        card("# Q?\n\n<script>alert(1)</script>\n"), "bad.md:8:1: error: HTML tag <script> is not allowed", id="script"
    ),
    pytest.param(
        card("# Q?\n\n<img src=x onerror=alert(1)>\n"), "attribute 'onerror' on <img> is not allowed", id="onerror"
    ),
    pytest.param(
        card('# Q?\n\n<a href="javascript:alert(1)">x</a>\n'), "link target 'javascript:alert(1)'", id="javascript-href"
    ),
    pytest.param(
        card("# Q?\n\n[x](javascript:alert(1))\n"),
        "links must start with http:, https: or mailto:",
        id="javascript-markdown-link",
    ),
    pytest.param(
        card('# Q?\n\n<iframe src="https://e.com"></iframe>\n'), "HTML tag <iframe> is not allowed", id="iframe"
    ),
    pytest.param(card("# Q?\n\n<style>*{display:none}</style>\n"), "HTML tag <style> is not allowed", id="style"),
    pytest.param(
        card("# Q?\n\n<details ontoggle=alert(1) open>x</details>\n"),
        "attribute 'ontoggle' on <details>",
        id="ontoggle",
    ),
    pytest.param(card("# Q?\n\n<object data=x></object>\n"), "HTML tag <object> is not allowed", id="object"),
    pytest.param(
        topic_yaml("name: <b onmouseover=x>B</b>\ndescription: d\norder: 2\n"),
        "topic name cannot contain <, >",
        id="html-in-topic-name",
    ),
    pytest.param(
        topic_yaml("name: alpha topic\ndescription: d\norder: 2\n"),
        "Anki matches deck names ignoring case",
        id="case-only-topic-names",
    ),
    pytest.param(
        topic_yaml("name: B\ndescription: d\norder: '²'\n"), "order must be a whole number", id="order-unicode"
    ),
    pytest.param(
        topic_yaml("a:\n" + "".join("  " * i + "- \n" for i in range(600))), "beta/topic.yaml", id="deep-yaml"
    ),
    pytest.param(card("# Q?\n\n" + NESTED_LIST), "bad.md", id="deep-markdown-list"),
    pytest.param(
        raw("deep.md", DEEP_CLOZE.encode()), "deep.md:9:7: error: cloze deletion {{c1::…}} is nested", id="deep-cloze"
    ),
    pytest.param(card("# Q?\n\n" + "$a " * 8000 + "\n"), "'$' has no matching closing '$'", id="many-dollars"),
    pytest.param(card("# Q?\n\nNUL \x00 here\n"), "bad.md:8:5: error: control character U+0000", id="nul"),
    pytest.param(card("# Q?\n\n![x](a\x00b.png)\n"), "control character U+0000", id="nul-in-image-path"),
    pytest.param(raw("enc.md", b"---\nid: alpha-enc\n\xff\n"), "enc.md:3:1: error: not valid UTF-8", id="utf8"),
    pytest.param(folder_named_card, "x.md:1:1: error: expected a file, found a folder", id="folder-named-md"),
    pytest.param(dangling, "gone.md:1:1: error: broken or looping symlink", id="dangling-symlink"),
    pytest.param(looping, "loop.md:1:1: error: broken or looping symlink", id="looping-symlink"),
    pytest.param(subfolder_card, "deep.md:1:1: error: card in a subfolder is not built", id="subfolder-card"),
    pytest.param(raw("upper.MD", GOOD.encode()), "upper.MD:1:1: error: card file must end in '.md'", id="upper-md"),
    pytest.param(raw("long.markdown", GOOD.encode()), "card file must end in '.md'", id="markdown-extension"),
    pytest.param(
        manifest("[]"), "manifest.json:1:1: error: cannot read the manifest: expected a JSON object", id="manifest-list"
    ),
    pytest.param(manifest('{"format": 2, "version": "x"}'), "invalid version 'x'", id="manifest-version"),
    pytest.param(manifest_edit('"file": "alpha.apkg"', '"file": "../outside/secret.png"'),
                 "names the file '../outside/secret.png'", id="manifest-deck-file-outside-dist"),
    pytest.param(manifest_edit('"id": "alpha-good"', '"id": "alpha-good\\u001b[2J"'),
                 "invalid id or topic 'alpha-good\\x1b[2J'", id="manifest-id-control-sequence"),
    # Math is content: MathJax's links, CSS and macros never reach a reviewer.
    pytest.param(card("# Q?\n\n$\\href{javascript:alert(1)}{show answer}$\n"),
                 "bad.md:8:2: error: TeX command '\\href' is not allowed in math", id="tex-href"),
    pytest.param(card("# Q?\n\nSee\n$$\n\\style{position:fixed;width:100%}{x}\n$$\n"),
                 "bad.md:10:1: error: TeX command '\\style' is not allowed in math", id="tex-style"),
    pytest.param(card("# Q?\n\nA \\(\\bbox[url(https://e.com/p.png)]{x}\\)\n"),
                 "bad.md:8:5: error: TeX command '\\bbox' is not allowed in math", id="tex-bbox"),
    pytest.param(card("# Q?\n\n$\\def\\x{\\href{https://e.com}{y}}\\x$\n"),
                 "TeX command '\\def' is not allowed in math", id="tex-def"),
    pytest.param(card("# Q?\n\n$\\begin{array}x\\end{array} \\begin{html}x\\end{html}$\n"),
                 "TeX environment 'html' is not allowed in math", id="tex-environment"),
    pytest.param(card("# Q?\n\nA &#92;(\\class{x}{y}&#92;) B\n"),
                 "bad.md:8:1: error: TeX command '\\class' is not allowed in math (in the rendered field)",
                 id="tex-through-html-entities"),
    pytest.param(card("# Q?\n\nA \\\\(\\cssId{x}{y}\\\\) B\n"),
                 "TeX command '\\cssId' is not allowed in math (in the rendered field)",
                 id="tex-through-markdown-escapes"),
    pytest.param(raw("clz.md", b'---\nid: alpha-clz\ntype: cloze\ntags: []\nsource: [alpha]\n---\n# T\n\n'
                 b'Hover <span title="{{c1::x}}">here</span> and {{c2::y}}.\n'),
                 "clz.md:7:1: error: a cloze deletion inside an HTML attribute value (in the rendered field)",
                 id="cloze-inside-an-attribute"),
    # Nothing from a source reaches the terminal raw.
    pytest.param(raw("a\x1b]52;c;SGVsbG8=\x07b.md", GOOD.encode()), "a\\x1b]52;c;SGVsbG8=\\x07b.md",
                 id="control-sequence-in-file-name"),
    pytest.param(raw("esc.md", b'---\nid: alpha-esc\ntags: []\n"\\e[2K\\rbuilt": 1\n---\n# Q?\n\nA.\n'),
                 "unknown front-matter key '\\x1b[2K\\rbuilt'", id="control-sequence-in-yaml-escape"),
]  # fmt: skip


@pytest.mark.parametrize(("plant", "expected"), CASES)
def test_hostile_input_is_a_located_error(tmp_path: Path, plant: Plant, expected: str) -> None:
    content, dist, outside = _tree(tmp_path)
    before = _snapshot(dist)
    try:
        plant(content, outside)
    except _ReplaceManifest as replacement:
        (dist / "manifest.json").write_text(replacement.text)
        before = _snapshot(dist)
    result = CliRunner().invoke(
        main,
        ["build", "--content", str(content), "--dist", str(dist), "--no-cache"],
        env={"SOURCE_DATE_EPOCH": str(T0)},
    )
    assert result.exit_code == 1, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.output
    assert not any(ord(c) < 32 and c != "\n" for c in result.output), "a control character reached the terminal"
    assert _snapshot(dist) == before
    assert b"SECRET" not in b"".join(before.values())


def test_an_unclosed_cloze_is_an_error_not_an_empty_note(tmp_path: Path) -> None:
    content, dist, _ = _tree(tmp_path)
    (content / "alpha" / "c.md").write_text(
        "---\nid: alpha-c\ntags: [x]\nsource: [alpha]\ntype: cloze\n---\n# T\n\nThe {{c1::open cloze\n"
    )
    result = CliRunner().invoke(main, ["build", "--content", str(content), "--dist", str(dist)])
    assert result.exit_code == 1
    assert "c.md:9:5: error: cloze deletion {{c1::…}} is never closed with '}}'" in result.stderr


def test_nested_cloze_is_an_error(tmp_path: Path) -> None:
    content, dist, _ = _tree(tmp_path)
    (content / "alpha" / "c.md").write_text(
        "---\nid: alpha-c\ntags: [x]\nsource: [alpha]\ntype: cloze\n---\n# T\n\n{{c1::a {{c2::b}} c}}\n"
    )
    result = CliRunner().invoke(main, ["build", "--content", str(content), "--dist", str(dist)])
    assert "is nested inside another" in result.stderr


@pytest.mark.parametrize("epoch", ["²", "1e20", "-5", "99999999999999"])
def test_bad_source_date_epoch_is_a_clear_error(tmp_path: Path, epoch: str) -> None:
    content, dist, _ = _tree(tmp_path)
    result = CliRunner().invoke(
        main, ["build", "--content", str(content), "--dist", str(dist)], env={"SOURCE_DATE_EPOCH": epoch}
    )
    assert result.exit_code == 1
    assert "SOURCE_DATE_EPOCH must be a whole number of seconds" in result.output


def test_a_non_utf8_changelog_is_a_located_error(tmp_path: Path) -> None:
    content, dist, _ = _tree(tmp_path)
    (dist / "CHANGELOG.md").write_bytes(b"\xff\xfe")
    result = CliRunner().invoke(main, ["build", "--content", str(content), "--dist", str(dist)])
    assert result.exit_code == 1
    assert "CHANGELOG.md:1:1: error: cannot read the changelog" in result.stderr


def test_files_the_build_did_not_make_are_kept(tmp_path: Path) -> None:
    content, dist, _ = _tree(tmp_path)
    (dist / "my-own-deck.apkg").write_bytes(b"mine")
    (content / "alpha" / "good.md").write_text(GOOD.replace("An answer.", "A new answer."))
    result = CliRunner().invoke(main, ["build", "--content", str(content), "--dist", str(dist)])
    assert result.exit_code == 0, result.output
    assert (dist / "my-own-deck.apkg").read_bytes() == b"mine"
    assert not list(tmp_path.glob(".staging-*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_a_read_only_dist_is_a_one_line_error(tmp_path: Path) -> None:
    content, dist, _ = _tree(tmp_path)
    (content / "alpha" / "good.md").write_text(GOOD.replace("An answer.", "Changed."))
    tmp_path.chmod(0o555)
    try:
        result = CliRunner().invoke(main, ["build", "--content", str(content), "--dist", str(dist)])
    finally:
        tmp_path.chmod(0o755)
    assert result.exit_code == 1
    assert "error: cannot write" in result.stderr and "Traceback" not in result.output


def test_deck_description_text_is_escaped(tmp_path: Path) -> None:
    import sqlite3
    import zipfile

    content, dist, _ = _tree(tmp_path)
    (content / "beta" / "topic.yaml").write_text(
        "name: Beta Topic\ndescription: <img src=x onerror=alert(1)>\norder: 2\n"
    )
    result = CliRunner().invoke(main, ["build", "--content", str(content), "--dist", str(dist)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(dist / "beta.apkg") as archive:
        (tmp_path / "c.anki2").write_bytes(archive.read("collection.anki2"))
    decks = sqlite3.connect(tmp_path / "c.anki2").execute("select decks from col").fetchone()[0]
    assert "&lt;img src=x onerror=alert(1)&gt;" in decks
    assert "<img" not in decks


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    content = tmp_path / "content"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"SECRET")
    (outside / "card.md").write_text(GOOD.replace("alpha-good", "alpha-stolen").replace("An answer.", "SECRET"))
    content.mkdir()
    (content / "deckset.yaml").write_text("name: Test Decks\n")
    for order, key in enumerate(("alpha", "beta")):
        (content / key).mkdir()
        (content / key / "topic.yaml").write_text(
            f"name: {key.title()} Topic\ndescription: About {key}.\norder: {order}\n"
        )
    (content / "alpha" / "good.md").write_text(GOOD)
    dist = tmp_path / "dist"
    result = CliRunner().invoke(
        main, ["build", "--content", str(content), "--dist", str(dist)], env={"SOURCE_DATE_EPOCH": str(T0)}
    )
    assert result.exit_code == 0, result.output
    return content, dist, outside


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


QUADRATIC_MARKDOWN = {
    "open-brackets": "[" * 30_000,
    "open-images": "![" * 15_000,
    "open-links": "[a](" * 8_000,
    "reference-openers": "[a][" * 8_000,
}


@pytest.mark.parametrize("body", QUADRATIC_MARKDOWN.values(), ids=QUADRATIC_MARKDOWN.keys())
def test_markdown_that_would_take_minutes_stops_at_the_card_budget(
    tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generator.cards import compile as compile_module

    monkeypatch.setattr(compile_module, "CARD_CPU_SECONDS", 1)
    content, dist, outside = _tree(tmp_path)
    before = _snapshot(dist)
    card(f"# Q?\n\n{body}\n", name="slow")(content, outside)
    result = CliRunner().invoke(
        main, ["check", "--content", str(content), "--dist", str(dist)], env={"SOURCE_DATE_EPOCH": str(T0)}
    )
    assert result.exit_code == 1, result.output
    assert "slow.md:1:1: error: card took more than 1 s of CPU time to compile (the per-card limit)" in result.stderr
    assert _snapshot(dist) == before
    # The converter was reset: the next card renders normally.

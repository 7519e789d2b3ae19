"""Safety end to end: real Anki shows no script; a killed build never leaves a mixed release."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generator.build import build
from tests.conftest import T0, WriteCard

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

ALLOWED = """
# Every **allowed** construct: *emphasis*, `code`, <kbd>Ctrl</kbd>, H<sub>2</sub>O, x<sup>2</sup>

| a | b |
|:--|--:|
| 1 | 2 |

<details><summary>More</summary>Hidden text.</details>

- a list with [a link](https://keras.io/) and <mark>marked</mark> text
- $x^2$ and $$\\sum_i x_i$$

```python
print("<script>not a tag</script>")
```

![a figure](pic.svg)
"""


def test_every_allowed_construct_reaches_anki_without_script(
    content: Path, write_card: WriteCard, tmp_path: Path, collection_factory
) -> None:
    from tests.anki_support import import_package, rendered

    (content / "alpha" / "pic.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
    )
    write_card("alpha", "allowed", "id: alpha-allowed\ntags: [html]\nsource: [alpha]", ALLOWED)
    dist = tmp_path / "dist"
    build(content, dist, T0)
    collection = collection_factory()
    assert import_package(collection, dist / "all-topics.apkg").new == 1
    ((_deck, question, answer),) = rendered(collection)
    for side in (question, answer):
        lowered = side.lower()
        assert "<script" not in lowered and "javascript:" not in lowered
        assert " on" not in " ".join(tag.split(">")[0] for tag in lowered.split("<")[1:]).replace("onal", "")
    assert "<kbd>Ctrl</kbd>" in question and "<summary>More</summary>" in answer
    assert "&lt;script&gt;" in answer or "&lt;/script&gt;" in answer


def _corpus(tmp_path: Path, copies: int) -> Path:
    """The real content copied `copies` times with new ids: a build that takes a while."""
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    for topic in [p for p in content.iterdir() if (p / "topic.yaml").is_file()]:
        cards = sorted(topic.glob("*.md"))
        for copy in range(1, copies):
            for card in cards:
                text = card.read_text(encoding="utf-8")
                text = text.replace("\nid: ", f"\nid: copy{copy}-", 1)
                text = text.replace("\n# ", f"\n# (copy {copy}) ", 1)
                text = text.replace("previous_ids: [", f"previous_ids: [copy{copy}-")
                (topic / f"copy{copy}-{card.name}").write_text(text, encoding="utf-8")
    return content


def _consistent(dist: Path) -> None:
    sums = dict(reversed(line.split("  ")) for line in (dist / "SHA256SUMS").read_text().splitlines())
    for name, digest in sums.items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest, name
    import json

    manifest = json.loads((dist / "manifest.json").read_text())
    for deck in manifest["decks"]:
        assert hashlib.sha256((dist / deck["file"]).read_bytes()).hexdigest() == deck["sha256"]
    changelog = (dist / "CHANGELOG.md").read_text()
    titles = [line for line in changelog.splitlines() if line.startswith("## ")]
    assert len(titles) == len(set(titles))
    assert not [p for p in dist.iterdir() if p.name.startswith(".")]


def test_kill_at_any_moment_leaves_a_whole_release(tmp_path: Path) -> None:
    content = _corpus(tmp_path, 3)
    dist = tmp_path / "dist"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(T0)}
    command = [sys.executable, "-m", "generator", "build", "-q", "--no-cache", "--content", str(content),
               "--dist", str(dist)]  # fmt: skip
    subprocess.run(command, check=True, env=env, capture_output=True)
    _consistent(dist)
    edited = sorted((content / "cnn").glob("*.md"))[0]
    for delay in (0.5, 1.5, 3.0, 5.0, 8.0):
        edited.write_text(edited.read_text() + f"\nEdit {delay}.\n")
        process = subprocess.Popen(command, env={**env, "SOURCE_DATE_EPOCH": str(T0 + int(delay * 10))},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        _consistent(dist)
    rerun = subprocess.run(command, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    _consistent(dist)
    assert not list(tmp_path.glob(".staging-*"))
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", str(content)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "processes of a killed build outlived it"

"""A deterministic benchmark corpus in the project's card format, and its ankdown twin.

Card `i` depends only on the seed and `i`, so the first 1,000 cards of a
10,000-card corpus are the 1,000-card corpus. About a third of the cards carry a
Python block, a quarter math, a tenth a table; every answer has 80-150 words.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

DECKSET_NAME = "Benchmark Decks"
MAX_CODE_LINE = 80
MIN_ANSWER_WORDS, MAX_ANSWER_WORDS = 80, 150
ANSWER_WORD = re.compile(r"\S*[^\W_]\S*")  # a run of non-space holding a letter or digit
MATH = re.compile(r"\$\$.+?\$\$|\$.+?\$")
NO_RUN_FENCE = "```python no-run: benchmark"

# (key, deck name): ten topics, so a corpus of N cards makes ten decks of N/10.
TOPICS: tuple[tuple[str, str], ...] = (
    ("activations", "Activation Functions"),
    ("autoencoders", "Autoencoders"),
    ("cnn", "Convolutional Networks"),
    ("keras-basics", "Keras API and Workflow"),
    ("nlp", "NLP Preprocessing"),
    ("nn-fundamentals", "Neural Network Fundamentals"),
    ("regularization", "Regularisation"),
    ("rnn", "Recurrent Networks"),
    ("training", "Training and Optimisation"),
    ("transfer-learning", "Transfer Learning"),
)

WORDS: tuple[str, ...] = tuple(
    """
    activation adam attention backpropagation batch bias capacity channel checkpoint
    classifier clipping convolution cross-entropy dataset decay decoder dense depth
    dimension dropout embedding encoder epoch feature filter fine-tuning gate gradient
    hidden initialisation input kernel label layer learning logit loss matrix memory
    metric minibatch model momentum network neuron normalisation objective optimiser
    output overfitting padding parameter pooling prediction probability projection
    recurrent regularisation representation residual sample scale schedule sequence
    shape signal softmax sparsity stride tensor token training underfitting unit
    validation variance vector vocabulary weight window the a of to and in is for
    with that by on as from each when which this it can more less than every both
    """.split()
)

PYTHON_IDENTIFIERS: tuple[str, ...] = (
    "weights", "scores", "values", "logits", "grads", "batch", "tokens", "errors",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """What a generated corpus holds, by feature."""

    cards: int
    with_code: int
    with_math: int
    with_table: int


def generate(root: Path, cards: int, seed: int = 0) -> CorpusStats:
    """Write `cards` cards, `deckset.yaml` and one `topic.yaml` per topic under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "deckset.yaml").write_text(f"name: {DECKSET_NAME}\n", encoding="utf-8")
    for order, (key, name) in enumerate(TOPICS):
        folder = root / key
        folder.mkdir(exist_ok=True)
        (folder / "topic.yaml").write_text(
            f"name: {name}\ndescription: Generated benchmark cards about {name.lower()}.\norder: {order}\n",
            encoding="utf-8",
        )
    with_code = with_math = with_table = 0
    for index in range(cards):
        topic, _ = TOPICS[index % len(TOPICS)]
        number = index // len(TOPICS)
        text, features = card_text(topic, number, random.Random(f"{seed}:{index}"))
        (root / topic / f"card-{number:05d}.md").write_text(text, encoding="utf-8")
        with_code += "code" in features
        with_math += "math" in features
        with_table += "table" in features
    return CorpusStats(cards, with_code, with_math, with_table)


def card_text(topic: str, number: int, rng: random.Random) -> tuple[str, set[str]]:
    """One card file's text, and which features ('code', 'math', 'table') it has."""
    features = set()
    if rng.random() < 1 / 3:
        features.add("code")
    if rng.random() < 1 / 4:
        features.add("math")
    if rng.random() < 1 / 10:
        features.add("table")
    tags = sorted({"concept", *(_FEATURE_TAGS[f] for f in features)})
    question = f"How does the {rng.choice(WORDS)} {rng.choice(WORDS)} affect {rng.choice(WORDS)} (case {number})?"

    # Formulas and table cells count as answer words too (one per formula), code does not.
    math_sentence = f"In symbols, ${_formula(rng)}$ holds for every ${_symbol(rng)}$." if "math" in features else ""
    display_math = f"$${_formula(rng)}$$" if "math" in features else ""
    table = _table(rng) if "table" in features else ""
    extra_words = _answer_word_count(f"{math_sentence}\n\n{display_math}\n\n{table}")
    paragraphs = _prose(rng, rng.randint(MIN_ANSWER_WORDS, MAX_ANSWER_WORDS) - extra_words)

    blocks = [f"{paragraphs[0]} {math_sentence}".rstrip(), display_math]
    if "code" in features:
        blocks.append(f"{NO_RUN_FENCE}\n{_python_block(rng)}```")
    blocks += [*paragraphs[1:], table]

    front_matter = f"---\nid: {topic}-{number}\ntags: [{', '.join(tags)}]\nsource: [{topic}]\n---\n"
    return front_matter + f"# {question}\n\n" + "\n\n".join(b for b in blocks if b) + "\n", features


def _answer_word_count(markdown: str) -> int:
    """Words as the build's reader check counts them: prose words, one per formula."""
    prose, formulas = MATH.subn(" ", markdown)
    return len(ANSWER_WORD.findall(prose)) + formulas


_FEATURE_TAGS = {"code": "code", "math": "math", "table": "comparison"}


def _prose(rng: random.Random, word_count: int) -> list[str]:
    """`word_count` words of sentences, in two or three paragraphs."""
    sentences: list[str] = []
    remaining = word_count
    while remaining > 0:
        length = min(remaining, rng.randint(6, 16))
        words = [rng.choice(WORDS) for _ in range(length)]
        if length > 4 and rng.random() < 0.3:
            position = rng.randrange(length)
            words[position] = f"**{words[position]}**"
        if length > 4 and rng.random() < 0.2:
            position = rng.randrange(length)
            words[position] = f"`{words[position]}`"
        sentence = " ".join(words)
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
        remaining -= length
    paragraph_count = min(len(sentences), rng.randint(2, 3))
    size = -(-len(sentences) // paragraph_count)
    return [" ".join(sentences[i : i + size]) for i in range(0, len(sentences), size)]


_GREEK = ("alpha", "beta", "gamma", "lambda", "mu", "sigma", "theta", "eta")


def _symbol(rng: random.Random) -> str:
    return f"\\{rng.choice(_GREEK)}_{{{rng.randint(1, 9)}}}"


def _formula(rng: random.Random) -> str:
    n = rng.randint(2, 64)
    a, b = _symbol(rng), _symbol(rng)
    return rng.choice(
        (
            f"\\frac{{\\partial L}}{{\\partial w_{{{n}}}}} = {a} \\cdot x_{{{n}}}",
            f"\\sum_{{i=1}}^{{{n}}} x_i^2 \\le {a}",
            f"\\sigma(z) = \\frac{{1}}{{1 + e^{{-{a} z}}}}",
            f"y = \\max(0, {a} x + {b})",
            f"\\lVert w \\rVert_2^2 = \\sum_{{j=1}}^{{{n}}} w_j^2",
        )
    )


def _python_block(rng: random.Random) -> str:
    """A few lines of valid Python (checked here: it compiles, lines fit in 80 columns)."""
    name = rng.choice(PYTHON_IDENTIFIERS)
    word = re.sub(r"[^a-z]", "_", rng.choice(WORDS))
    factor = rng.randint(2, 9) / 10
    size = rng.randint(3, 12)
    code = rng.choice(
        (
            f"def scale_{word}({name}: list[float], factor: float = {factor}) -> list:\n"
            f'    """Multiply every entry by factor."""\n'
            f"    return [value * factor for value in {name}]\n"
            f"\n"
            f"print(scale_{word}([float(i) for i in range({size})]))\n",
            f"import math\n"
            f"\n"
            f"{name} = [math.sin(step / {size}) for step in range({size})]\n"
            f"total = sum(math.exp(value) for value in {name})\n"
            f"softmax = [math.exp(value) / total for value in {name}]\n"
            f'print(f"{{max(softmax):.3f}}")\n',
            f"class {word.title().replace('_', '')}Counter:\n"
            f'    """Count how often each {word} appears."""\n'
            f"\n"
            f"    def __init__(self) -> None:\n"
            f"        self.counts: dict[str, int] = {{}}\n"
            f"\n"
            f"    def add(self, key: str) -> None:\n"
            f"        self.counts[key] = self.counts.get(key, 0) + {size}\n",
        )
    )
    compile(code, "<benchmark card>", "exec")  # raises on a broken template
    too_long = [line for line in code.splitlines() if len(line) > MAX_CODE_LINE]
    if too_long:
        raise ValueError(f"code line longer than {MAX_CODE_LINE} characters: {too_long[0]!r}")
    return code


def _table(rng: random.Random) -> str:
    rows = ["| setting | value | effect |", "| --- | ---: | --- |"]
    for _ in range(rng.randint(2, 4)):
        rows.append(f"| {rng.choice(WORDS)} | {rng.randint(1, 512)} | {rng.choice(WORDS)} {rng.choice(WORDS)} |")
    return "\n".join(rows)


# ankdown: one card per file here, fields split by '%' lines, cards by '---' lines;
# the deck is named after the folder. Its --config option cannot be used with
# PyYAML 6 (it calls yaml.load without a Loader), so its 'dollar' setting is out
# of reach: math is rewritten to the \( \) and \[ \] delimiters it always reads.
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?=\S)(.+?)(?<=\S)\$(?!\d)")
_FENCE_INFO = re.compile(r"^(\s*```+\s*\w+).*$")


def to_ankdown(corpus: Path, target: Path) -> int:
    """Write the cards of `corpus` as ankdown input under `target/<topic>/`; return the card count."""
    count = 0
    for card_path in sorted(corpus.glob("*/*.md")):
        folder = target / card_path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / card_path.name).write_text(ankdown_card(card_path.read_text(encoding="utf-8")), encoding="utf-8")
        count += 1
    return count


def ankdown_card(text: str) -> str:
    """One card of our format (as `generate` writes it) in ankdown's format: front % back % tags."""
    _, front_matter, body = text.split("---\n", 2)
    meta = dict(line.split(": ", 1) for line in front_matter.strip().split("\n"))
    topic = meta["source"].strip("[]")
    tags = [tag.strip() for tag in meta["tags"].strip("[]").split(",") if tag.strip()]
    heading, _, answer = body.partition("\n")
    question = heading.removeprefix("# ")
    fields = (_ankdown_markdown(question), _ankdown_markdown(answer.strip()), " ".join([topic, *tags]))
    return "\n\n%\n\n".join(fields) + "\n"


def _ankdown_markdown(markdown: str) -> str:
    """Our Markdown in ankdown's dialect: math delimiters rewritten, fence info reduced to the language."""
    pieces = re.split(r"(^```[^\n]*\n.*?^```$)", markdown, flags=re.DOTALL | re.MULTILINE)
    for index, piece in enumerate(pieces):
        if index % 2:  # a fenced block: keep the code, drop 'no-run: …' from the info
            pieces[index] = _FENCE_INFO.sub(r"\1", piece.split("\n", 1)[0]) + "\n" + piece.split("\n", 1)[1]
        else:
            piece = _DISPLAY_MATH.sub(lambda m: f"\\[{m.group(1)}\\]", piece)
            pieces[index] = _INLINE_MATH.sub(lambda m: f"\\({m.group(1)}\\)", piece)
    return "".join(pieces)


def edit_answer(card_path: Path, marker: str) -> str:
    """Replace the first word of the card's answer by `marker`; return the original text to put back."""
    original = card_path.read_text(encoding="utf-8")
    lines = original.split("\n")
    answer = next(i for i, line in enumerate(lines) if line.startswith("# ")) + 2  # after the blank line
    lines[answer] = f"{marker} {lines[answer].partition(' ')[2]}"
    card_path.write_text("\n".join(lines), encoding="utf-8")
    return original

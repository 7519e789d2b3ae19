"""Every allowed TeX command, typeset by Anki's own MathJax build and configuration, stays inert.

The MathJax build and its configuration come from the `aqt` wheel (Anki desktop's
own web files; installed with `pip install --no-deps aqt`, no Qt needed). A page
loads them like Anki's reviewer does, typesets one formula per allowed command
and environment, and reports what MathJax made: no link, no style that could
fetch or cover the page, no error, and no request beyond MathJax's own files.
A control page proves the check would see those things if they were there.
"""

from __future__ import annotations

import html
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from generator.cards.tex import ALLOWED_COMMANDS, ALLOWED_ENVIRONMENTS, tex_problems
from tests.browser import needs_chromium, report
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.slow, needs_chromium]

# Commands that only make sense with a particular neighbour.
IN_CONTEXT = {
    "left": r"\left( x \right)",
    "right": r"\left[ x \right]",
    "middle": r"\left( a \middle| b \right)",
    "not": r"a \not= b",
    "limits": r"\sum\limits_{i=1}^{n} i",
    "nolimits": r"\int\nolimits_0^1 x",
    "substack": r"\sum_{\substack{i<n \\ j<m}} x",
    "hline": r"\begin{array}{c} a \\ \hline b \end{array}",
    "begin": r"\begin{matrix} a \end{matrix}",
    "end": r"\begin{matrix} a \end{matrix}",
    "operatorname": r"\operatorname{softmax}(x)",
    "colon": r"f \colon A \to B",
}
DELIMITER_SIZES = {"big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr", "Biggl", "Biggr"}
ENVIRONMENT_BODIES = {
    "array": r"\begin{array}{cc} a & b \end{array}",
    "subarray": r"\sum_{\begin{subarray}{c} i \\ j \end{subarray}} x",
    "alignedat": r"\begin{alignedat}{2} a &= b \\ c &= d \end{alignedat}",
}


def formula_for(command: str) -> str:
    if command in IN_CONTEXT:
        return IN_CONTEXT[command]
    if command in DELIMITER_SIZES:
        return rf"\{command}( x \{command})"
    return rf"x \{command}{{a}}{{b}} y"


def environment_formula(name: str) -> str:
    return ENVIRONMENT_BODIES.get(name, rf"\begin{{{name}}} a & b \\ c & d \end{{{name}}}")


def anki_mathjax() -> Path:
    spec = importlib.util.find_spec("_aqt")
    if spec is None or not spec.submodule_search_locations:
        skip_or_fail("needs Anki's web files (pip install --no-deps aqt==26.9.3)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "web" / "js"


def typeset(formulas: list[str], tmp_path: Path) -> list[dict[str, Any]]:
    """Typeset each formula in its own element with Anki's MathJax; report per formula."""
    web = anki_mathjax()
    site = tmp_path / "site"
    shutil.copytree(web / "vendor" / "mathjax", site / "mathjax")
    # Anki's configuration, pointed at the copy instead of Anki's internal server path.
    config = (web / "mathjax.js").read_text(encoding="utf-8").replace("/_anki/js/vendor/mathjax", "./mathjax")
    assert "./mathjax" in config, "Anki's MathJax configuration changed shape"
    (site / "config.js").write_text(config, encoding="utf-8")
    items = "\n".join(f'<div class="f" id="f{i}">\\({html.escape(tex)}\\)</div>' for i, tex in enumerate(formulas))
    (site / "index.html").write_text(
        f"""<!doctype html><html><head><meta charset="utf-8">
<script src="config.js"></script><script src="mathjax/tex-chtml-full.js"></script></head>
<body>{items}
<script>
MathJax.startup.promise.then(() => MathJax.typesetPromise()).then(() => {{
  const base = new URL("./mathjax/", location.href).href;
  const requests = performance.getEntriesByType("resource").map(e => e.name)
    .filter(name => !name.startsWith(base) && !name.endsWith("config.js"));
  const out = [...document.querySelectorAll(".f")].map(div => ({{
    links: div.querySelectorAll("a, [href]").length,
    errors: div.querySelectorAll("mjx-merror, [data-mjx-error]").length + (div.textContent.includes("\\\\") ? 1 : 0),
    styles: [...div.querySelectorAll("[style]")].map(e => e.getAttribute("style")),
    classes: [...div.querySelectorAll("[class]")].flatMap(e => [...e.classList])
      .filter(c => !/^(mjx-|MJX-|MathJax|TEX-|CtxtMenu_)/.test(c)),
    ids: [...div.querySelectorAll("[id]")].map(e => e.id),
    typeset: div.querySelectorAll("mjx-container").length,
  }}));
  document.body.innerHTML = "";
  const pre = document.createElement("pre"); pre.id = "report";
  pre.textContent = JSON.stringify({{formulas: out, requests}});
  document.body.appendChild(pre);
}});
</script></body></html>""",
        encoding="utf-8",
    )
    result = report((site / "index.html").as_uri(), tmp_path / "profile", wait_ms=20_000)
    assert result["requests"] == [], result["requests"]
    formulas_report: list[dict[str, Any]] = result["formulas"]
    return formulas_report


UNSAFE_STYLE = ("url(", "fixed", "absolute", "z-index", "background", "opacity", "@import", "expression")


def test_every_allowed_command_typesets_inert_in_ankis_mathjax(tmp_path: Path) -> None:
    formulas = [formula_for(c) for c in sorted(ALLOWED_COMMANDS)]
    formulas += [environment_formula(e) for e in sorted(ALLOWED_ENVIRONMENTS)]
    assert all(tex_problems(tex) == [] for tex in formulas)
    results = typeset(formulas, tmp_path)
    bad = {}
    for tex, found in zip(formulas, results, strict=True):
        unsafe_styles = [s for s in found["styles"] if any(word in s.lower() for word in UNSAFE_STYLE)]
        if found["typeset"] != 1 or found["links"] or found["errors"] or unsafe_styles or found["classes"]:
            bad[tex] = found
        if found["ids"]:
            bad[tex] = found
    assert bad == {}, f"{sorted(bad)}\n{json.dumps(bad, indent=1)[:2000]}"


def test_the_control_formulas_show_the_check_can_see_links_styles_and_requests(tmp_path: Path) -> None:
    """Anki's MathJax does make links and CSS from these: the allow-list is what keeps them out."""
    controls = [
        r"\href{https://example.invalid/}{x}",
        r"\style{position:fixed;background:red}{x}",
        r"\class{evil}{x}",
        r"\cssId{evil}{x}",
    ]
    assert all(tex_problems(tex) != [] for tex in controls)
    links, styled, classed, ided = typeset(controls, tmp_path)
    assert links["links"] >= 1
    assert any("fixed" in s for s in styled["styles"])
    assert "evil" in classed["classes"]
    assert "evil" in ided["ids"]


def test_every_formula_on_the_cards_typesets_without_error(tmp_path: Path) -> None:
    from generator.cards.scan import Math, scan

    content = Path(__file__).resolve().parents[1] / "content"
    formulas = sorted(
        {
            segment.tex.replace("{{c", "{ {c")  # a cloze marker inside math: Anki removes it before MathJax
            for path in content.glob("*/*.md")
            for segment in scan(path.read_text(encoding="utf-8"), path, 1)[0]
            if isinstance(segment, Math)
        }
    )
    assert len(formulas) > 200
    results = typeset(formulas, tmp_path)
    failed = [tex for tex, found in zip(formulas, results, strict=True) if found["errors"] or found["links"]]
    assert failed == []

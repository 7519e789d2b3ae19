"""The `decks` command: a thin layer over the library in `generator.build`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from generator import __version__
from generator.build import BuildResult, build, check
from generator.diagnostics import BuildFailed, summarize

content_option = click.option(
    "--content",
    "content_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("content"),
    show_default=True,
    help="Folder with deckset.yaml and one folder per topic.",
)
dist_option = click.option(
    "--dist",
    "dist_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Folder for the .apkg files and the manifest.",
)
strict_option = click.option("--strict", is_flag=True, help="Treat warnings as errors.")


def build_time() -> int:
    """The time stamped on changed cards: SOURCE_DATE_EPOCH if set, else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        if not epoch.isdigit():
            raise click.BadParameter("SOURCE_DATE_EPOCH must be a whole number of seconds")
        return int(epoch)
    return int(time.time())


@click.group()
@click.version_option(__version__, prog_name="decks")
def main() -> None:
    """Build Anki decks from the Markdown cards in content/."""


@main.command("build")
@content_option
@dist_option
@strict_option
@click.option("--allow-rename", is_flag=True, help="Accept a changed deck name (existing cards keep the old deck).")
@click.option("--check", "check_only", is_flag=True, help="Write nothing; fail if dist/ differs from a fresh build.")
def build_command(content_dir: Path, dist_dir: Path, strict: bool, allow_rename: bool, check_only: bool) -> None:
    """Build one .apkg per topic, plus all-topics.apkg, into dist/."""
    try:
        if check_only:
            result, differences = check(content_dir, dist_dir, build_time(), strict=strict)
            _report_warnings(result)
            for difference in differences:
                click.echo(f"{dist_dir / difference.file}: out of date: {difference.reason}", err=True)
            if differences:
                click.echo(f"{len(differences)} file(s) differ from the sources: run 'decks build'", err=True)
                sys.exit(1)
            click.echo(f"{dist_dir} is up to date (release {result.manifest.version})")
            return
        result = build(content_dir, dist_dir, build_time(), strict=strict, allow_rename=allow_rename)
    except BuildFailed as failure:
        click.echo(str(failure), err=True)
        sys.exit(1)
    _report_warnings(result)
    notes = sum(d.notes for d in result.manifest.decks)
    cards = sum(d.cards for d in result.manifest.decks)
    click.echo(
        f"built {len(result.manifest.decks)} decks ({notes} notes, {cards} cards) "
        f"into {dist_dir}, release {result.manifest.version}"
    )
    changes = result.changes
    if not result.previous.cards:
        click.echo("first release")
    elif changes.any:
        click.echo(
            f"since {result.previous.version}: {len(changes.added)} added, {len(changes.changed)} changed, "
            f"{len(changes.removed)} removed, {len(changes.moved)} moved"
        )


@main.command("new")
@content_option
@click.argument("topic")
@click.argument("slug")
@click.option("--type", "card_type", type=click.Choice(["basic", "reversed", "cloze"]), default="basic")
@click.option("--question", default="Your question?", help="The question (front) to start with.")
def new_command(content_dir: Path, topic: str, slug: str, card_type: str, question: str) -> None:
    """Create content/TOPIC/SLUG.md with the id TOPIC-SLUG, ready to edit."""
    from generator.scaffold import ScaffoldError, new_card

    try:
        path = new_card(content_dir, topic, slug, card_type, question)  # type: ignore[arg-type]
    except ScaffoldError as problem:
        raise click.ClickException(str(problem)) from problem
    click.echo(f"created {path}")


@main.command("changelog")
@content_option
@dist_option
def changelog_command(content_dir: Path, dist_dir: Path) -> None:
    """Print what the next build would record, or else the latest release's notes."""
    from generator.build import CHANGELOG_FILE
    from generator.changelog import latest_section, release_section

    now = build_time()
    try:
        result, _ = check(content_dir, dist_dir, now)
    except BuildFailed as failure:
        click.echo(str(failure), err=True)
        sys.exit(1)
    if result.changes.any and result.manifest.version != result.previous.version:
        click.echo("Not yet built (run 'decks build'):\n")
        click.echo(release_section(result.previous, result.manifest, result.changes, now))
        return
    changelog = dist_dir / CHANGELOG_FILE
    click.echo(latest_section(changelog.read_text(encoding="utf-8") if changelog.is_file() else ""))


@main.command("check")
@content_option
@strict_option
@click.option("--run-code", is_flag=True, help="Also run every python block and compare its output with the card.")
@click.option("--jobs", type=click.IntRange(1), default=2, show_default=True, help="Cards run in parallel.")
@click.argument("only", nargs=-1, type=click.Path(path_type=Path))
def check_command(content_dir: Path, strict: bool, run_code: bool, jobs: int, only: tuple[Path, ...]) -> None:
    """Validate and render every card without writing anything.

    With ONLY (card files or topic folders), --run-code runs just those cards.
    """
    from generator.build import compile_release
    from generator.ledger import EMPTY

    try:
        result = compile_release(content_dir, EMPTY, 0, strict=strict)
    except BuildFailed as failure:
        click.echo(str(failure), err=True)
        sys.exit(1)
    _report_warnings(result)
    click.echo(f"{len(result.cards)} cards OK")
    if not run_code:
        return
    from generator.runcode import extract_program, run_programs

    chosen = [r.card for r in result.cards if _selected(r.card.path, only)]
    report = run_programs([extract_program(card) for card in chosen], workers=jobs)
    for problem in report.problems:
        click.echo(problem.format(), err=True)
    click.echo(
        f"code: {report.blocks_run} blocks run in {report.programs} cards, {report.blocks_exempt} exempt, "
        f"{report.outputs_checked} outputs checked, {len(report.problems)} failures"
    )
    if report.problems:
        sys.exit(1)


def _selected(path: Path, only: tuple[Path, ...]) -> bool:
    if not only:
        return True
    resolved = path.resolve()
    return any(resolved == o.resolve() or o.resolve() in resolved.parents for o in only)


def _report_warnings(result: BuildResult) -> None:
    for diagnostic in result.warnings:
        click.echo(diagnostic.format(), err=True)
    if result.warnings:
        click.echo(summarize(result.warnings), err=True)

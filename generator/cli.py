"""The `decks` command: a thin layer over the library in `generator.build`.

The pipeline is imported inside each command, so `decks --help` stays instant.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from generator import __version__

if TYPE_CHECKING:
    from generator.build import BuildResult, Options

MAX_EPOCH = 253_402_300_799  # 9999-12-31
PROGRESS_DELAY = 1.5  # seconds before a progress bar appears: short builds stay quiet

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
    help="Folder for the .apkg files, the manifest and the changelog.",
)
strict_option = click.option("--strict", is_flag=True, help="Treat warnings as errors.")
jobs_option = click.option(
    "--jobs", "-j", type=click.IntRange(1, 64), default=None, help="Processes for rendering [default: all cores]."
)
cache_option = click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the render cache [default: a folder per content folder in your user cache folder].",
)
no_cache_option = click.option("--no-cache", is_flag=True, help="Render every card again.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar, only problems and the summary.")
verbose_option = click.option("--verbose", "-v", is_flag=True, help="Also print how long each stage took.")


def build_time() -> int:
    """The time stamped on changed cards: SOURCE_DATE_EPOCH if set, else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None:
        return int(time.time())
    if not re.fullmatch(r"[0-9]{1,12}", epoch) or int(epoch) > MAX_EPOCH:
        raise click.ClickException(
            f"SOURCE_DATE_EPOCH must be a whole number of seconds since 1970 (at most {MAX_EPOCH}), not {epoch[:30]!r}"
        )
    return int(epoch)


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    release = "none yet"
    manifest = Path("dist") / "manifest.json"
    try:
        release = str(json.loads(manifest.read_bytes())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    click.echo(f"decks (generator {__version__}), content release {release} (from {manifest})")
    ctx.exit()


@click.group()
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
    help="Show the generator version and the content release in dist/.",
)  # fmt: skip
def main() -> None:
    """Build Anki decks from the Markdown cards in content/."""
    _clean_up_when_terminated()


def _clean_up_when_terminated() -> None:
    """Stop on SIGTERM or SIGHUP (a CI job cancelled, a closed terminal) as on Ctrl-C: by unwinding.

    So scratch folders are removed, background processes stopped and dist/ left whole, instead of
    the process vanishing mid-build. The exit status is 128 plus the signal's number, as if killed.
    """
    import signal
    import threading

    def unwind(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (a command run from a library's thread)
    signals = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]  # no SIGHUP: Windows
    before = {signum: signal.signal(signum, unwind) for signum in signals}

    def restore() -> None:  # when the command ends: a program that runs `decks` in-process keeps its own
        for signum, handler in before.items():
            signal.signal(signum, handler)

    click.get_current_context().call_on_close(restore)


@main.command("build")
@content_option
@dist_option
@strict_option
@click.option("--allow-rename", is_flag=True, help="Accept a changed deck name (existing cards keep the old deck).")
@click.option("--check", "check_only", is_flag=True, help="Write nothing; fail if dist/ differs from a fresh build.")
@jobs_option
@cache_option
@no_cache_option
@quiet_option
@verbose_option
def build_command(
    content_dir: Path, dist_dir: Path, strict: bool, allow_rename: bool, check_only: bool, jobs: int | None,
    cache_dir: Path | None, no_cache: bool, quiet: bool, verbose: bool,
) -> None:  # fmt: skip
    """Build one .apkg per topic, plus all-topics.apkg, into dist/ (a draft: see 'decks release')."""
    from generator.build import build, check
    from generator.diagnostics import BuildFailed

    started = time.monotonic()
    options = _options(content_dir, strict=strict, allow_rename=allow_rename, jobs=jobs, cache_dir=cache_dir,
                       no_cache=no_cache, quiet=quiet)  # fmt: skip
    try:
        if check_only:
            result, differences = check(content_dir, dist_dir, build_time(), options=options)
            _report_warnings(result)
            for difference in differences:
                click.echo(f"{dist_dir / difference.file}: out of date: {difference.reason}", err=True)
            if differences:
                click.echo(f"{len(differences)} file(s) differ from the sources: run 'decks build'", err=True)
                sys.exit(1)
            click.echo(f"{dist_dir} is up to date ({_state(result)})")
            return
        result = build(content_dir, dist_dir, build_time(), options=options)
    except BuildFailed as failure:
        _fail(failure)
    _report_warnings(result)
    _summary("up to date:" if result.up_to_date else "built", result, started, verbose)
    if result.changes.any:
        click.echo("unreleased changes are listed in CHANGELOG.md; 'decks release' publishes them")


@main.command("release")
@click.argument("part", type=click.Choice(["auto", "major", "minor", "patch"]), default="auto")
@content_option
@dist_option
@click.option("--allow-removal", is_flag=True, help="Publish the removal of cards users already have.")
@click.option("--allow-rename", is_flag=True, help="Accept a changed deck name (existing cards keep the old deck).")
@jobs_option
@cache_option
@quiet_option
def release_command(
    part: str, content_dir: Path, dist_dir: Path, allow_removal: bool, allow_rename: bool, jobs: int | None,
    cache_dir: Path | None, quiet: bool,
) -> None:  # fmt: skip
    """Cut a release from the unreleased changes: PART is the version bump (auto: from the changes)."""
    from generator.build import build
    from generator.diagnostics import BuildFailed

    started = time.monotonic()
    options = _options(content_dir, strict=True, allow_rename=allow_rename, allow_removal=allow_removal, jobs=jobs,
                       cache_dir=cache_dir, no_cache=False, quiet=quiet)  # fmt: skip
    try:
        result = build(content_dir, dist_dir, build_time(), options=options, release=part)
    except BuildFailed as failure:
        _fail(failure)
    _summary(f"released {result.manifest.version}:", result, started, False)


@main.command("new")
@content_option
@click.argument("topic")
@click.argument("slug")
@click.option("--type", "card_type", type=click.Choice(["basic", "reversed", "cloze"]), default="basic")
@click.option("--question", default=None, help="The question (front) to start with.")
def new_command(content_dir: Path, topic: str, slug: str, card_type: str, question: str | None) -> None:
    """Create content/TOPIC/SLUG.md with the id TOPIC-SLUG, ready to edit."""
    from generator.authoring.scaffold import PLACEHOLDER_QUESTION, ScaffoldError, new_card

    try:
        path = new_card(content_dir, topic, slug, card_type, question or PLACEHOLDER_QUESTION)  # type: ignore[arg-type]  # a Choice of CardType
    except ScaffoldError as problem:
        raise click.ClickException(str(problem)) from problem
    click.echo(f"created {path}: replace the template text, then 'decks check {path}'")


@main.command("changelog")
@content_option
@dist_option
def changelog_command(content_dir: Path, dist_dir: Path) -> None:
    """Print the unreleased changes (as the next build records them), or else the latest release's notes."""
    from generator.build import check
    from generator.diagnostics import BuildFailed, visible
    from generator.release.plan import UNRELEASED, changes_section, latest_section

    try:
        result, _ = check(content_dir, dist_dir, build_time(), package=False)
    except BuildFailed as failure:
        _fail(failure)
    if result.changes.any:
        notes = changes_section(UNRELEASED, result.manifest, result.changes)
    else:
        changelog = dist_dir / "CHANGELOG.md"
        notes = latest_section(changelog.read_text(encoding="utf-8", errors="replace") if changelog.is_file() else "")
    # The changelog is committed text: show any control character escaped, line by line.
    click.echo("\n".join(visible(line) for line in notes.split("\n")))


@main.command("history")
@dist_option
@click.argument("card_id")
def history_command(dist_dir: Path, card_id: str) -> None:
    """Print the lineage of CARD_ID from the identity ledger: every id of its note and what became of each."""
    from generator.diagnostics import visible
    from generator.release.identities import LEDGER_FILE, read_ledger

    ledger, problems = read_ledger(dist_dir / LEDGER_FILE)
    if problems or ledger is None:
        for problem in problems:
            click.echo(problem.format(), err=True)
        raise click.ClickException(f"no identity ledger in {dist_dir}: nothing was released yet")
    lineage = ledger.lineage(card_id)
    if not lineage:
        raise click.ClickException(f"'{visible(card_id)}' was never released (new cards enter the ledger on release)")
    first = lineage[0]
    click.echo(f"note GUID {first.guid}, note id {first.note_id}")
    for identity in lineage:
        if identity.state == "renamed":
            state = f"renamed to {identity.successor} in {identity.release}"
        elif identity.state == "removed":
            state = f"removed in {identity.release}"
        else:
            state = f"live since {identity.release}"
        click.echo(visible(f"  {identity.id}: {state}; {identity.file}: {identity.question}"))


@main.command("check")
@content_option
@dist_option
@strict_option
@click.option("--run-code", is_flag=True, help="Also run every python block and compare its output with the card.")
@jobs_option
@cache_option
@click.argument("only", nargs=-1, type=click.Path(path_type=Path))
def check_command(
    content_dir: Path, dist_dir: Path, strict: bool, run_code: bool, jobs: int | None, cache_dir: Path | None,
    only: tuple[Path, ...],
) -> None:  # fmt: skip
    """Run the build's validation and identity guards (against dist/manifest.json) without packaging.

    With ONLY (card files or topic folders), report and run just those cards.
    """
    from generator.build import check
    from generator.diagnostics import BuildFailed, summarize

    options = _options(content_dir, strict=strict, allow_rename=False, jobs=jobs, cache_dir=cache_dir,
                       no_cache=False, quiet=True)  # fmt: skip
    try:
        result, _ = check(content_dir, dist_dir, build_time(), options=options, package=False)
        cards = result.cards
        _report_warnings(result, only)
    except BuildFailed as failure:
        shown = tuple(d for d in failure.diagnostics if _selected(d.location.path, only))
        if shown:
            click.echo("\n".join(d.format() for d in shown), err=True)
            click.echo(summarize(shown), err=True)
            sys.exit(1)
        # Every problem lies in cards outside ONLY: the chosen cards are sound on their own.
        from generator.cards.compile import compile_cards

        cards = compile_cards(content_dir, jobs=options.jobs, cache=options.cache).cards
    chosen = [r.card for r in cards if _selected(r.card.path, only)]
    click.echo(f"{len(chosen)} cards OK")
    if not run_code:
        return
    from generator.verify import runner as runcode
    from generator.verify.runner import extract_program, run_programs

    if missing := runcode.missing_verify_extra():
        raise click.ClickException(missing)

    report = run_programs([extract_program(card) for card in chosen], workers=jobs or 2)
    for problem in report.problems:
        click.echo(problem.format(), err=True)
    click.echo(report.summary())
    if report.problems:
        sys.exit(1)


def _options(
    content_dir: Path, *, strict: bool, allow_rename: bool, jobs: int | None, cache_dir: Path | None,
    no_cache: bool, quiet: bool, allow_removal: bool = False,
) -> Options:  # fmt: skip
    from generator.build import Options
    from generator.cache import RenderCache, default_cache_folder

    cache = None
    if not no_cache:
        cache = RenderCache(cache_dir or default_cache_folder(content_dir))
        if (trouble := cache.trouble()) is not None:
            click.echo(
                f"warning: {trouble}\n  hint: give the key a folder of its own that this user can write "
                "(XDG_STATE_HOME), outside every cache folder",
                err=True,
            )
    progress = None if quiet or not sys.stderr.isatty() else _ProgressLine()
    return Options(strict, allow_rename, allow_removal, jobs or default_jobs(), cache, progress)


def default_jobs() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _ProgressLine:
    """A one-line progress bar on stderr, shown only once a build has run for a moment."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if time.monotonic() - self.started < PROGRESS_DELAY and done < total:
            return
        if not self.shown and done >= total:
            return  # finished before the delay: never draw
        self.shown = True
        width = 30
        filled = width * done // max(total, 1)
        end = "\n" if done >= total else ""
        click.echo(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} cards", err=True, nl=False)
        if end:
            click.echo("", err=True)


def _summary(verb: str, result: BuildResult, started: float, verbose: bool) -> None:
    notes = sum(d.notes for d in result.manifest.decks)
    cards = sum(d.cards for d in result.manifest.decks)
    seconds = time.monotonic() - started
    click.echo(
        f"{verb} {len(result.manifest.decks)} decks ({notes} notes, {cards} cards) in {seconds:.1f} s, "
        f"{result.cache_hits} of {notes} cards from the cache; {_state(result)}"
    )
    if verbose:
        for stage, spent in result.timings.items():
            click.echo(f"  {stage}: {spent:.2f} s")


def _state(result: BuildResult) -> str:
    from generator.release.plan import release_label

    return release_label(
        result.manifest.version, result.changes.any and result.manifest.version == result.previous.version
    )


def _fail(failure: Exception) -> None:
    click.echo(str(failure), err=True)
    sys.exit(1)


def _selected(path: Path, only: tuple[Path, ...]) -> bool:
    if not only:
        return True
    resolved = path.resolve()
    return any(resolved == o.resolve() or o.resolve() in resolved.parents for o in only)


def _report_warnings(result: BuildResult, only: tuple[Path, ...] = ()) -> None:
    from generator.diagnostics import summarize

    shown = tuple(d for d in result.warnings if _selected(d.location.path, only))
    for diagnostic in shown:
        click.echo(diagnostic.format(), err=True)
    if shown:
        click.echo(summarize(shown), err=True)


# --- Working with your Anki: push, diff --anki, import (logic in generator.roundtrip) ---

profile_option = click.option("--profile", default=None, help="Anki profile whose collection to use.")
collection_option = click.option(
    "--collection", "collection_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The collection file (collection.anki2) instead of a profile's.",
)  # fmt: skip
via_option = click.option(
    "--via", type=click.Choice(["collection", "ankiconnect"]), default="collection", show_default=True,
    help="Open the collection (Anki closed), or talk to a running Anki through AnkiConnect.",
)  # fmt: skip
url_option = click.option("--url", default="http://127.0.0.1:8765", show_default=True, help="AnkiConnect's address.")


@main.command("push")
@dist_option
@profile_option
@collection_option
@via_option
@url_option
@click.option("--force", is_flag=True, help="Also overwrite notes edited in Anki since the build.")
@click.option("--prune", is_flag=True, help="Delete retired notes (after a confirmation).")
@click.argument("topics", nargs=-1)
def push_command(
    dist_dir: Path, profile: str | None, collection_path: Path | None, via: str, url: str, force: bool, prune: bool,
    topics: tuple[str, ...],
) -> None:  # fmt: skip
    """Import the built decks (all-topics.apkg, or TOPICS' decks) into your Anki with Anki's own importer."""
    from generator.roundtrip.push import PushError, open_target, push

    full = dist_dir / "all-topics.apkg"
    packages = [dist_dir / f"{t}.apkg" for t in topics] or [full]
    for package in packages:
        if not package.is_file():
            raise click.ClickException(f"no {package}: run 'decks build' first")

    def confirm(ids: list[str]) -> bool:
        return click.confirm(f"delete {len(ids)} retired notes and their review history from Anki?", default=False)

    try:
        target = open_target(via, url, profile, collection_path, backup=True)
        try:
            for package in packages:
                report = push(target, package, full, force=force, prune=prune, confirm_prune=confirm)
                if report.backup is not None:
                    click.echo(f"backed up the collection to {report.backup}")
                for line in report.lines():
                    click.echo(line)
                click.echo(f"{package.name}: {report.summary()}")
        finally:
            target.close()
    except PushError as problem:
        raise click.ClickException(str(problem)) from None


@main.command("diff")
@content_option
@dist_option
@click.option("--anki", "against_anki", is_flag=True, required=True, help="Compare with the notes in your Anki.")
@profile_option
@collection_option
@via_option
@url_option
def diff_command(
    content_dir: Path, dist_dir: Path, against_anki: bool, profile: str | None, collection_path: Path | None, via: str,
    url: str,
) -> None:  # fmt: skip
    """Show, per card file, how the text of its note in Anki differs from the build (matched by the Id field)."""
    from generator.apkg.notetype import note_types
    from generator.release.manifest import read_manifest
    from generator.roundtrip.push import PushError, anki_differences, open_target

    names = {nt.model_id: nt.fields for nt in note_types().values()}
    manifest, _ = read_manifest(dist_dir / "manifest.json")
    paths = {c.id: c.path for c in manifest.cards} if manifest is not None else {}
    try:
        target = open_target(via, url, profile, collection_path, backup=False)
        try:
            found = anki_differences(target, dist_dir / "all-topics.apkg", lambda mid: names.get(mid, ()))
        finally:
            target.close()
    except PushError as problem:
        raise click.ClickException(str(problem)) from None
    for item in found:
        source = content_dir / paths[item.card_id] if item.card_id in paths else f"(no source for {item.card_id})"
        click.echo(f"{source}: field {item.field} differs in Anki")
        click.echo(item.diff)
    click.echo(f"{len({i.card_id for i in found})} cards differ in Anki")


@main.command("import")
@content_option
@click.argument("package", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--topic", required=True, help="Topic folder to write the cards into (created if missing).")
def import_command(content_dir: Path, package: Path, topic: str) -> None:
    """Turn an existing deck (basic, reversed and cloze notes) into Markdown cards that keep their GUIDs."""
    from generator.roundtrip.deck_import import import_deck
    from generator.roundtrip.push import PushError

    try:
        result = import_deck(package, content_dir, topic)
    except PushError as problem:
        raise click.ClickException(str(problem)) from None
    for skipped in result.skipped:
        click.echo(f"not imported (other note type) {skipped}", err=True)
    click.echo(
        f"wrote {len(result.written)} cards and {len(result.media)} images to {content_dir / topic}: "
        f"review them, then 'decks check {content_dir / topic}'"
    )


@main.command("preview")
@content_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build/preview"),
    show_default=True,
    help="Folder for the preview site.",
)
@click.option("--serve", is_flag=True, help="Serve the site, rebuild cards as they are saved, reload open pages.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port for --serve (0: any free one)."
)
def preview_command(content_dir: Path, out_dir: Path, serve: bool, port: int) -> None:
    """Write a site showing every card as reviewers see it: light and night, desktop and phone width.

    With --serve, http://127.0.0.1:PORT/ shows it and follows your edits.
    """
    from generator.diagnostics import summarize
    from generator.preview.site import PreviewError, PreviewSite

    try:
        site = PreviewSite(content_dir, out_dir)
    except PreviewError as problem:
        raise click.ClickException(str(problem)) from problem
    if serve:
        from generator.preview.server import serve as serve_site

        try:
            serve_site(site, port, click.echo)
        except PreviewError as problem:
            raise click.ClickException(str(problem)) from problem
        except KeyboardInterrupt:
            click.echo("stopped")
        return
    try:
        report = site.build()
    except PreviewError as problem:  # e.g. a symlink planted while the site was being written
        raise click.ClickException(str(problem)) from problem
    for diagnostic in report.diagnostics:
        click.echo(diagnostic.format(), err=True)
    if report.diagnostics:
        click.echo(summarize(report.diagnostics), err=True)
    click.echo(f"previewed {report.cards} cards: open {out_dir / 'index.html'}")


@main.command("figures", context_settings={"ignore_unknown_options": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def figures_command(args: tuple[str, ...]) -> None:
    """Redraw the SVG figures on the cards (needs the `figures` extra); --check writes nothing."""
    try:
        from generator.authoring.figures import main as figures_main
    except ImportError as missing:
        raise click.ClickException(f"decks figures needs matplotlib: pip install -e '.[figures]' ({missing})") from None
    figures_main.main(list(args), prog_name="decks figures", standalone_mode=True)


@main.command("stats")
@content_option
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def stats_command(content_dir: Path, as_json: bool) -> None:
    """Count cards per topic and type, tags, code, formulas and tables, and answer lengths."""
    from generator.authoring.stats import content_stats, stats_text

    stats = content_stats(content_dir)
    if stats is None:
        raise click.ClickException(f"cannot read the content folder {content_dir}: run 'decks check'")
    click.echo(json.dumps(stats.as_json(), indent=2) if as_json else stats_text(stats))

"""The commands that read or write the local database, as one library call each.

Each function takes the command's `Settings` (the database, public ranges, fingerprints, the
time window) and the action's own values, opens what it needs, and returns data: the command
line only prints it. A command that writes opens the database with
`services.recovery.open_for_writing`, which first ends the runs dead processes left running.
Input the user got wrong is an `InputError` (exit 2); nothing here prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from core.errors import ConfigError
from core.target import Platform
from results.store import Store
from services.recovery import open_for_writing
from services.settings import Settings


def platforms() -> list[Platform]:
    """The bundled catalogue."""
    from targets.catalogue import load_catalogue

    return load_catalogue()


def require_run(store: Store, run: int | None) -> None:
    """A --run that names no run is a mistake, not an empty answer (nor an empty file)."""
    if run is not None and store.run(run) is None:
        raise ConfigError(f"--run {run}: no such run in {store.path} (see netvigil "
                          "measurements)", "--run")


def measurements(settings: Settings, run: int | None = None, target: str | None = None,
                 verdict: str | None = None, limit: int = 200
                 ) -> tuple[list[dict[str, Any]], int]:
    """The newest `limit` measurements that match, and how many match in all."""
    with Store(settings.db, access="read") as store:
        require_run(store, run)
        rows = store.measurements(run_id=run, target=target, verdict=verdict, limit=limit)
        return rows, store.count_measurements(run_id=run, target=target, verdict=verdict)


def measurement(settings: Settings, measurement_id: int) -> dict[str, Any]:
    """One stored measurement with every observation; ConfigError when there is none."""
    with Store(settings.db, access="read") as store:
        row = store.measurement(measurement_id)
    if row is None:
        raise ConfigError(f"measurement {measurement_id}: not found in {settings.db}")
    return row


def export(settings: Settings, fmt: str, out: Path | None, stdout: TextIO,
           run: int | None = None) -> str | None:
    """Write measurements in `fmt` to `out` (to `stdout` when None, text formats only); returns
    what to tell people ("wrote FILE"), or None when the data went to stdout."""
    if fmt == "parquet":
        return _export_parquet(settings, out, run)
    from results.export import export_csv, export_jsonl, export_ooni

    writer = {"jsonl": export_jsonl, "csv": export_csv, "ooni": export_ooni}[fmt]
    with Store(settings.db, access="read") as store:
        require_run(store, run)  # before the file is made: a wrong --run leaves nothing behind
        if out is None:
            writer(store, stdout, run_id=run)
            return None
        with open(out, "w", newline="", encoding="utf-8") as fh:
            writer(store, fh, run_id=run)
    return f"wrote {out}"


def _export_parquet(settings: Settings, out: Path | None, run: int | None) -> str:
    if out is None:
        raise ConfigError("export --format parquet: give --out FILE.parquet (Parquet is binary)",
                          "--out")
    from results.export_parquet import export_parquet

    with Store(settings.db, access="read") as store:
        require_run(store, run)
        try:
            rows = export_parquet(store, out, run_id=run)
        except ImportError:
            raise ConfigError("Parquet export needs pyarrow: pip install 'netvigil[parquet]'",
                              "--format") from None
    return f"wrote {out} ({rows} measurements)"


def analyze(settings: Settings, run: int | None = None) -> dict[str, int]:
    """Judge stored runs again with the settings' public ranges and fingerprints."""
    from services.reanalyse import reanalyse

    with open_for_writing(settings.db, settings.fingerprints, access="write") as store:
        require_run(store, run)
        return reanalyse(store, run_id=run, public_ranges=settings.public_ranges,
                         fingerprints=settings.fingerprints)


def events(settings: Settings, target: str | None = None, kind: str | None = None) -> list[Any]:
    """Blocking and outage events in the settings' window."""
    from services.events import events as find_events

    with Store(settings.db, access="read") as store:
        return find_events(store, settings.since, settings.until, target, kind)


def draw(out: Path, make: Any) -> str:
    """Write to `out` the chart `make(presentation.plots, fmt)` returns ('png' or 'svg', told by
    `out`'s suffix); a missing matplotlib is a ConfigError. Returns what to tell people."""
    if out.suffix.lower() not in (".png", ".svg"):
        raise ConfigError(f"--out {out}: use a .png or .svg file name", "--out")
    try:
        from presentation import plots
        from presentation.plot_style import output_format

        image: bytes = make(plots, output_format(out))
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'netvigil[plot]'") from None
    out.write_bytes(image)
    return f"wrote {out}"


def plot_timeline(settings: Settings, out: Path, target: str | None = None,
                  title: str | None = None) -> str:
    """Measurements and events over time, one row per target."""
    from services.events import events as find_events
    from services.events import points

    with Store(settings.db, access="read") as store:
        return draw(out, lambda plots, fmt: plots.plot_timeline(
            points(store, settings.since, settings.until, target),
            find_events(store, settings.since, settings.until, target), fmt, title))


def plot_reachability(settings: Settings, out: Path, bin_width: str = "1h") -> str:
    """The reachable share per network over time, in bins `bin_width` wide ("5m", "1h")."""
    from services.events import reachability_bins

    minutes = bin_minutes(bin_width)  # checked before the database is opened
    with Store(settings.db, access="read") as store:
        return draw(out, lambda plots, fmt: plots.plot_reachability(
            reachability_bins(store, settings.since, settings.until, minutes), fmt))


def bin_minutes(text: str) -> int:
    """A reachability bin's width in whole minutes, from a duration ("5m", "1h", "1h30m")."""
    from services.settings_checks import duration

    seconds = duration(text, "--bin")
    if seconds < 60 or seconds % 60:
        raise ConfigError(f"--bin {text}: a bin is a whole number of minutes, at least 1m "
                          "(e.g. 5m, 1h)", "--bin")
    return int(seconds // 60)


def report(settings: Settings, out: Path, event: str | None = None, redact_vantage: bool = False,
           lang: str = "en") -> str:
    """Write the lawyer's report (HTML or PDF, told by `out`'s suffix); returns what to tell
    people: the file, and whether the custody log recorded it (not on a read-only database)."""
    from results import custody
    from services.report import ReportOptions, write_report

    with Store(settings.db, access="record") as store:
        path = write_report(store, out, ReportOptions(
            event=event, since=settings.since, until=settings.until,
            redact_vantage=redact_vantage, lang=lang))
        return f"wrote {path}; {custody.outcome(store)}"


def ooni_classify(settings: Settings, files: Sequence[str]) -> list[dict[str, Any]]:
    """Our verdict beside OONI's for each measurement in `files`; nothing is stored."""
    from services.ooni_tools import classify_files

    return classify_files(files, settings.fingerprints)


def ooni_import(settings: Settings, files: Sequence[str]) -> dict[str, Any]:
    """Store the OONI measurements in `files` as runs of the settings' database."""
    from services.ooni_tools import import_files

    with open_for_writing(settings.db, settings.fingerprints) as store:
        return import_files(files, store, settings.fingerprints)

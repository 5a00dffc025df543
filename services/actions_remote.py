"""The commands that talk to other machines, as one library call each: the test helper and the
collector (serving), `submit` (sending), and reading what a collector collected.

Like `services.actions`: each takes `Settings` and the action's values and returns data or an
exit status; the servers print their own start and stop lines (`services.http_base.serve`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import ConfigError
from services.actions import draw
from services.settings import Settings

COLLECTION_TITLE = "netvigil collection: measurements and events"


def serve_helper(settings: Settings) -> int:
    """Run the test helper on `settings.listen` until stopped; the exit status."""
    from services.helper_server import serve

    if settings.helper is None or settings.listen is None:
        raise ConfigError("helper serve: give --listen HOST:PORT", "--listen")
    return serve(settings.listen, settings.helper, settings.server_tls)


def serve_collector(settings: Settings) -> int:
    """Run the collector on `settings.listen` until stopped; the exit status."""
    from services.collector_server import serve

    if settings.collection is None or settings.listen is None:
        raise ConfigError("collector serve: give --listen HOST:PORT and --dir DIR", "--listen")
    return serve(settings.listen, settings.collection)


def submit(settings: Settings, runs_per_bundle: int = 10, timeout: float = 60.0,
           ca_bundle: str | None = None) -> dict[str, Any]:
    """Send ended runs not sent yet to the settings' collector, as bundles."""
    from services.recovery import open_for_writing
    from services.submit import submit as send

    collector = settings.require_collector("submit")
    if runs_per_bundle < 1:
        raise ConfigError("--runs-per-bundle must be at least 1", "--runs-per-bundle")
    with open_for_writing(settings.db, settings.fingerprints,
                          access="write") as store:
        return send(store, collector, token=settings.env.collector_token, timeout=timeout,
                    runs_per_bundle=runs_per_bundle, ca_bundle=ca_bundle,
                    public_ranges=settings.public_ranges, fingerprints=settings.fingerprints)


def _open(folder: Path) -> Any:
    from services.collector_intake import Collection

    if not (folder / "collection.db").is_file():
        raise ConfigError(f"--dir {folder}: no collection there (collection.db is missing)",
                          "--dir")
    return Collection(folder)


def collection_status(folder: Path) -> dict[str, Any]:
    """Bundles, probes and networks of a collection folder."""
    with _open(folder) as collection:
        result: dict[str, Any] = collection.status()
        return result


def collection_events(settings: Settings, folder: Path, kind: str | None = None) -> list[Any]:
    """Events across every probe of a collection, in the settings' window."""
    with _open(folder) as collection:
        return list(collection.events(kind, settings.since, settings.until))


def plot_collection(settings: Settings, folder: Path, chart: str, out: Path) -> str:
    """A collection's timeline or reachability chart; returns what to tell people."""
    since, until = settings.since, settings.until
    with _open(folder) as collection:
        if chart == "timeline":
            return draw(out, lambda plots, fmt: plots.plot_timeline(
                collection.points(since, until), collection.events(None, since, until), fmt,
                COLLECTION_TITLE))
        return draw(out, lambda plots, fmt: plots.plot_reachability(
            collection.reachability(since, until), fmt))

"""The evidence commands, as one library call each: verify, evidence, key.

Like `services.actions`: each takes `Settings` and the action's values and returns data (a
verification, a summary, a key); a selection the user got wrong is a `ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import ConfigError
from results.store import Store
from services import evidence
from services.recovery import open_for_writing
from services.settings import Settings


def verify(settings: Settings, reclassify: bool = True) -> Any:
    """Every hash, link, signature and derived row of the database (`Verification`)."""
    with Store(settings.db) as store:
        return evidence.verify_database(store, reclassify=reclassify,
                                        public_ranges=settings.public_ranges,
                                        fingerprints=settings.fingerprints)


def check_bundle(path: Path, allow_unsigned: bool = False) -> Any:
    """A bundle checked on its own, without the database (`Verification`); records no
    signature covers fail it unless `allow_unsigned`."""
    return evidence.check_bundle(path, allow_unsigned=allow_unsigned)


def custody(settings: Settings) -> list[dict[str, Any]]:
    with Store(settings.db) as store:
        return evidence.custody_log(store)


def export(settings: Settings, out: Path, event: str | None = None,
           runs: list[int] | None = None) -> dict[str, Any]:
    """Write an evidence bundle of one event, some runs, or the settings' window."""
    from services.events import events as find_events

    with Store(settings.db) as store:
        measurement_ids = None
        if event:
            found = [e for e in find_events(store, settings.since, settings.until)
                     if e.id == event]
            if not found:
                raise ConfigError(f"--event {event}: no such event (see netvigil events)",
                                  "--event")
            measurement_ids = list(found[0].measurement_ids)
        try:
            return evidence.export_evidence(store, out, run_ids=runs, since=settings.since,
                                            until=settings.until,
                                            measurement_ids=measurement_ids,
                                            public_ranges=settings.public_ranges,
                                            fingerprints=settings.fingerprints)
        except (KeyError, ValueError) as exc:  # the selection names nothing to export
            raise ConfigError(str(exc).strip("'\"")) from None


def timestamp(settings: Settings) -> dict[str, Any]:
    """Send the run heads not yet stamped to the settings' authority."""
    from services.timestamps import stamp_pending

    if settings.tsa is None:
        raise ConfigError("evidence timestamp: --tsa URL is required, e.g. netvigil evidence "
                          "timestamp --tsa https://tsa.example/tsr", "--tsa")
    with open_for_writing(settings.db, settings.fingerprints) as store:
        return stamp_pending(store, settings.tsa.url, timeout=settings.tsa.timeout,
                             roots_pem=settings.tsa.roots_pem)


def key(settings: Settings, rotate: bool = False) -> dict[str, Any]:
    """The signing key's id and public key; with `rotate`, a new one first."""
    with Store(settings.db) as store:
        return dict(evidence.rotate_key(store) if rotate else evidence.current_key(store))

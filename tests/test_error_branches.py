"""Storage and services raise the branch of `core.errors` that says what went wrong, and each
one stays a ValueError where it was one, so callers catching ValueError keep working."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import ConfigError, InputError, RecordError
from results.bundle_export import export_bundle
from results.canonical import canonical_json
from results.signing import b64decode_strict
from results.store import Store
from services.events import events
from services.http_base import parse_listen
from services.monitor import Schedule, parse_duration
from services.vantage import parse_asn, parse_country
from tests.test_store import CONFIG, VANTAGE


def test_the_store_refuses_records_with_record_errors(tmp_path: Path) -> None:
    with Store(tmp_path / "r.db", keys=tmp_path / "keys") as store:
        with pytest.raises(RecordError, match="never stores the probe's address"):
            store.begin_run({"ip": "10.0.0.1"}, CONFIG)
        run = store.begin_run(VANTAGE, CONFIG)
        with pytest.raises(RecordError, match="network must be one of"):
            store.finish_run(run, "sideways", {})
        store.finish_run(run, "ok", {})
        with pytest.raises(RecordError, match=f"run {run} is already finished") as caught:
            store.finish_run(run, "ok", {})
        assert isinstance(caught.value, ValueError) and caught.value.exit_code == 2
        with pytest.raises(RecordError, match="is not running"):
            store.record_clock(run, {"source": "ntp"})


def test_values_that_cannot_be_records_are_record_errors() -> None:
    with pytest.raises(RecordError, match="not a JSON number"):
        canonical_json(math.nan)
    with pytest.raises(RecordError, match="canonical base64"):
        b64decode_strict("YR==")  # decodes to "a", but is not how "a" is written


def test_an_empty_selection_is_a_config_error(tmp_path: Path) -> None:
    with Store(tmp_path / "e.db", keys=tmp_path / "keys") as store:
        with pytest.raises(ConfigError, match="no records"):
            export_bundle(store, tmp_path / "none.zip")
        with pytest.raises(ConfigError, match="no run matches"):
            export_bundle(store, tmp_path / "none.zip", since="2999-01-01")
        with pytest.raises(ConfigError) as caught:
            events(store, kind="flood")
        assert caught.value.option == "--kind"
    assert not (tmp_path / "none.zip").exists()


@pytest.mark.parametrize(("call", "option"), [
    (lambda: parse_listen("example.org:80"), "--listen"),
    (lambda: parse_listen("127.0.0.1:99999"), "--listen"),
    (lambda: parse_asn("ASX"), "--asn"),
    (lambda: parse_country("KEN"), "--country"),
    (lambda: parse_duration("15"), None),
    (lambda: Schedule(every=0), None),
])
def test_bad_options_are_config_errors(call: Callable[[], object], option: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        call()
    assert caught.value.option == option
    assert isinstance(caught.value, InputError) and "\n" not in str(caught.value)

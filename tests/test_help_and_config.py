"""Help text (issue 12): every option says what it does and its default, through `cli.main`."""

from __future__ import annotations

import argparse

import pytest

import cli
from tests.test_cli import _command_paths


def _leaf(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = cli._parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction)]


def _shows_default(action: argparse.Action) -> bool:
    """The help `netvigil ... --help` prints for the option mentions its default."""
    default = action.default
    if default in (None, False, [], argparse.SUPPRESS):
        return True  # nothing to show
    text = cli._HelpFormatter("netvigil")._get_help_string(action) or ""
    return "%(default)s" in text or f"default: {default}" in text


def test_every_option_of_every_command_has_help_and_shows_its_default() -> None:
    paths = [(), *_command_paths(cli._parser())]
    missing, silent = [], []
    for path in paths:
        for action in _options(_leaf(path)):
            where = " ".join((*path, action.option_strings[-1]))
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(where)
            elif not _shows_default(action):
                silent.append(where)
    assert missing == [], f"options without help: {missing}"
    assert silent == [], f"options whose default is not shown: {silent}"


@pytest.mark.parametrize(("path", "expected"), [
    (("run",), ["--concurrency N", "(default: 16)", "(default: 50.0)", "(default: 4.0)"]),
    (("measurements", "list"), ["--run N", "--target", "(default: 200)"]),
    (("helper", "serve"), ["(default: 127.0.0.1:8080)", "--public-range"]),
])
def test_the_rendered_help_shows_them(capsys, path: tuple[str, ...],
                                      expected: list[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([*path, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps: compare word runs
    for fragment in expected:
        assert fragment in text, (path, fragment)


def test_top_level_help_names_every_export_format(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "JSONL or CSV" not in text
    assert "JSONL, CSV, OONI or Parquet" in text


def test_evidence_export_help_lists_only_its_own_options(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["evidence", "export", "--help"])
    text = capsys.readouterr().out
    assert "--out FILE.zip" in text and "--event ID" in text
    # the other actions' options (verify, timestamp) are not mixed in
    for other in ("--allow-unsigned", "--tsa", "--tsa-root", "--record-custody",
                  "--no-reclassify"):
        assert other not in text, other

"""Packaging: the report catalogues ship as package data, with nothing for setuptools to warn of.

setuptools warned ("Package would be ignored") about every data folder under presentation/locale
that package discovery did not list; `make install` printed two such blocks (about 90 lines).
"""

from __future__ import annotations

import configparser
from importlib import resources
from pathlib import Path

from setuptools import find_namespace_packages

ROOT = Path(__file__).resolve().parent.parent


def _discovered() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["options"]["packages"].strip() == "find_namespace:"
    find = cfg["options.packages.find"]
    return find_namespace_packages(str(ROOT), include=find["include"].split(),
                                   exclude=find["exclude"].split())


def test_every_folder_with_package_data_is_a_listed_package() -> None:
    found = set(_discovered())
    data_folders = {".".join(p.parent.relative_to(ROOT).parts)
                    for p in (ROOT / "presentation" / "locale").rglob("*.po*")}
    assert data_folders and data_folders <= found
    assert not any("__pycache__" in name or name.startswith("tests") for name in found)


def test_the_catalogues_are_reachable_as_package_data() -> None:
    locale = resources.files("presentation") / "locale"
    assert (locale / "netvigil.pot").is_file()
    assert (locale / "en" / "LC_MESSAGES" / "netvigil.po").is_file()

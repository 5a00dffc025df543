"""Where the database lives when the user does not say: the user's data directory.

`NETVIGIL_DB` overrides it (for unattended installs and tests); `--db PATH` on the command line
overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_VAR = "NETVIGIL_DB"
APP_NAME = "netvigil"
FILE_NAME = "netvigil.db"


def default_db_path() -> Path:
    """$NETVIGIL_DB if set (and not empty), else <user data dir>/netvigil/netvigil.db."""
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path(APP_NAME) / FILE_NAME

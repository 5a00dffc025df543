"""A bundle's README lets an outside expert rebuild every signed message byte for byte.

Step 4 printed the custody message's "\\n" as real line breaks, so the message a reader had to
reproduce could not be copied. These tests take the commands out of a real bundle's README, run
them with the hashes the bundle holds, and check the probe's signatures over what they print.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from results import signing
from results.bundle_export import export_bundle
from results.store import Store
from tests.test_evidence import members, store

__all__ = ["store"]  # the fixture, shared with tests.test_evidence


def _bundle(store: Store, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    out = tmp_path / "b.zip"
    export_bundle(store, out)
    files = members(out)
    return files["b/README.txt"].decode("utf-8"), files


def _step(readme: str, number: int) -> str:
    start = readme.index(f"Step {number}:")
    end = readme.find(f"Step {number + 1}:", start)
    return readme[start:] if end < 0 else readme[start:end]


def _printf(step: str, values: dict[str, str]) -> bytes:
    """Run the step's printf line as a reader would, with the placeholders filled in."""
    [line] = [x.strip() for x in step.splitlines() if x.strip().startswith("printf ")]
    command = re.sub(r"<(\w+)>", lambda m: values[m.group(1)], line.split(" > ")[0])
    return subprocess.run(["sh", "-c", command], capture_output=True, check=True,
                          timeout=10).stdout


def _public_key(files: dict[str, bytes], key_id: str) -> Ed25519PublicKey:
    keys = {k["key_id"]: k for k in json.loads(files["b/data/keys.json"])}
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(keys[key_id]["public_key"]))


def test_step_4_rebuilds_the_signed_custody_message(store: Store, tmp_path: Path) -> None:
    readme, files = _bundle(store, tmp_path)
    step = _step(readme, 4)
    # The message is shown escaped, on one line: no line of it starts with a hash placeholder.
    assert "netvigil custody head v1\\n<anchor_sha256>\\n<head_sha256>" in step
    assert not any(line.lstrip().startswith(("<anchor_sha256>", '" +')) for line in
                   step.splitlines())
    signed = json.loads(files["b/data/custody_signature.json"])
    message = _printf(step, {"anchor_sha256": signed["anchor_sha256"],
                             "head_sha256": signed["head_sha256"]})
    assert message == signing.message(signed["head_sha256"],
                                      signing.custody_prefix(signed["anchor_sha256"]))
    _public_key(files, signed["key_id"]).verify(base64.b64decode(signed["signature"]), message)


def test_step_5_rebuilds_the_signed_run_head(store: Store, tmp_path: Path) -> None:
    readme, files = _bundle(store, tmp_path)
    for s in json.loads(files["b/data/signatures.json"]):
        message = _printf(_step(readme, 5), {"head_sha256": s["head_sha256"]})
        assert message == signing.message(s["head_sha256"])
        _public_key(files, s["key_id"]).verify(base64.b64decode(s["signature"]), message)

"""The README.txt of an evidence bundle: how an outside expert checks it step by step with
`sha256sum`, a short Python script and OpenSSL, without netvigil (`results.bundle_export`
writes it into every bundle).
"""

from __future__ import annotations

from typing import Any

_README = """\
netvigil evidence bundle: {root}
{rule}

What this is
  Raw measurements of Internet blocking made by netvigil, exactly as they were stored, with
  what proves they were not changed since. Runs exported: {runs}. Records {first}-{last}.
  Exported {exported} (the exporting computer's clock).

Files (a BagIt bag, RFC 8493)
  data/records.jsonl     one JSON object per line: id, run_id, kind, created, canonical,
                         prev_sha256, sha256. `canonical` is the stored record itself
                         (RFC 8785 canonical JSON). Kinds: run_start, measurement, control,
                         clock, run_end.
  data/bodies/<sha256>   HTTP bodies; a record refers to one as "body_ref": "sha256:<sha256>".
  data/certificates/<sha256>.der   TLS certificates, referred to the same way.
  data/keys.json         the probe's Ed25519 public keys (raw 32 bytes, base64). They carry no
                         identity: a key is random; its key_id is the first 32 hex digits of
                         the SHA-256 of the raw public key.
  data/signatures.json   per run: the signature of its chain head (the sha256 of its run_end).
  data/clock.json        the computer's clock state at each run (source, synchronised, offset).
  data/timestamps.json   RFC 3161 timestamps of run heads, if the probe could reach a
                         time-stamping authority: `token` is its DER TimeStampResp (base64),
                         `tsa_chain` its certificates (PEM, its own first, its root last).
  data/verdicts.jsonl    verdicts (derived data, not signed: `netvigil evidence verify`
                         classifies every measurement again from its signed records, with
                         its control and its run's network state, and names any difference),
                         for the runs whose run_start and run_end are both here.
  data/analysis.json     what the verdicts were judged with: the netvigil version, the public
                         ranges, and the fingerprint lists themselves with their SHA-256
                         (fingerprints_sha256: compare it with the lists you trust; this file
                         is not signed, so the verdicts hold *for these fingerprints*).
  data/events.json       blocking and outage events found among these verdicts (derived:
                         `netvigil evidence verify` finds them again and compares).
  data/custody.jsonl     the custody log: collection, export, analysis, ... of these data.
  data/custody_signature.json   the probe key's signature of the custody log's last entry.

Step 1: every file is intact
  unzip the bundle, then in the folder {root}:
      sha256sum -c tagmanifest-sha256.txt
      sha256sum -c manifest-sha256.txt
  Every line must say OK. Each body's file name is also its own SHA-256: `sha256sum data/bodies/*`.

Step 2: the hash chain
  For every line of data/records.jsonl (lines are split on "\\n" only):
      sha256 = SHA-256( prev_sha256 (64 hex digits, ASCII) + "\\n" + canonical (UTF-8) )
  and prev_sha256 of each line is the sha256 of the line before. The first line's prev_sha256 is
  the anchor, {anchor}.
  A value of 64 zeros means the first record of the database; otherwise it is the sha256 of the
  record just before this slice in the original database, and the slice verifies on its own
  from that anchor (a later bundle, or the database, shows the anchor in its chain).
  Changing, removing or inserting any record breaks the chain at that point.

Step 3: the signatures
  When a run ended, the probe signed the ASCII bytes
      "netvigil run head v1\\n" + <sha256 of the run's run_end record>
  with its Ed25519 key. That hash covers every record before it, so one signature vouches
  for the whole chain up to the end of the run. Save the script below as check.py and run
  `python3 check.py` in the folder {root} (it needs `pip install cryptography`); it checks steps
  2 and 3 and prints OK:

--- begin check.py ---
import base64, hashlib, json, pathlib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

data = pathlib.Path("data")
records, prev = {{}}, None
lines = (data / "records.jsonl").read_bytes().split(b"\\n")
for n, line in enumerate(lines[:-1], 1):
    r = json.loads(line)
    assert prev is None or r["prev_sha256"] == prev, f"line {{n}}: broken link"
    text = r["prev_sha256"].encode("ascii") + b"\\n" + r["canonical"].encode("utf-8")
    assert hashlib.sha256(text).hexdigest() == r["sha256"], f"line {{n}}: hash differs"
    records[r["sha256"]], prev = r, r["sha256"]
keys = {{k["key_id"]: k for k in json.loads((data / "keys.json").read_text())}}
for s in json.loads((data / "signatures.json").read_text()):
    head = records[s["head_sha256"]]
    assert head["kind"] == "run_end" and head["run_id"] == s["run_id"]
    raw = base64.b64decode(keys[s["key_id"]]["public_key"])
    assert hashlib.sha256(raw).hexdigest()[:32] == s["key_id"]
    message = b"netvigil run head v1\\n" + s["head_sha256"].encode("ascii")
    Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(s["signature"]), message)
    print("run", s["run_id"], "signed by key", s["key_id"])
print("OK: chain from anchor", lines[0] and json.loads(lines[0])["prev_sha256"])
--- end check.py ---

  A bad signature raises InvalidSignature. The keys are in the bundle, so check the key_id
  against one you obtained independently (from the volunteer, or from earlier bundles).
  Records after the last signed run head are covered by no signature (a run that never
  ended): `netvigil evidence verify` fails such a bundle unless asked --allow-unsigned.

Step 4: the custody log
  data/custody.jsonl is chained like the records: each entry's
      sha256 = SHA-256( prev_sha256 + "\\n" + RFC 8785 JSON of
               {{"action", "details", "hashes", "time", "tool_version"}} )
  with details and hashes parsed from their (canonical JSON) text. This export itself is
  logged in the database after the bundle was written, with the zip's SHA-256.
  The log starts at the first entry made since the first record here was collected; the
  first entry's prev_sha256 is its anchor (Netvigil-Custody-Anchor in bag-info.txt; 64 zeros:
  the log's first entry). data/custody_signature.json signs the slice like a run head (step 3),
  the message being "netvigil custody head v1\n" + <anchor_sha256> + "\n" + <head_sha256>,
  by the key named in it.

Step 5: the timestamps (if data/timestamps.json is not empty)
  Each token stamps the SHA-256 of the same message the probe signed (step 3). Save the token
  decoded from base64 as t.tsr, tsa_chain as chain.pem, the message with
      printf 'netvigil run head v1\\n%s' <head_sha256> > m.txt
  and check with OpenSSL:
      openssl ts -verify -in t.tsr -data m.txt -CAfile chain.pem
  Compare the root certificate's SHA-256 with the one the authority publishes.

With netvigil installed, `netvigil evidence verify <bundle.zip>` does all of the above and more
(blob references, clock records, verdict links, every verdict classified again from the
records, the events found again from the verdicts) and names any file or record that fails.

Limits: times come from the probe's own clock (see data/clock.json), except the times in the
timestamps, which come from the authority; runs without a timestamp have only the former.
"""


def readme(root: str, summary: dict[str, Any]) -> str:
    """README.txt for a bundle: how to check it step by step with standard tools."""
    title = f"netvigil evidence bundle: {root}"
    return _README.format(
        root=root, rule="=" * len(title), runs=", ".join(map(str, summary["selected_runs"])),
        first=summary["records"][0], last=summary["records"][1], exported=summary["exported"],
        anchor=summary["anchor"],
    )


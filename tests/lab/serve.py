"""The lab's servers, run as one process inside a namespace: DNS, HTTP(S) and the censor's proxy.

    python -m tests.lab.serve CONFIG.json

CONFIG (every key optional):
    {"dns":   [{"listen": "IP:PORT", "rules": {name: Rule fields}, "default": Rule fields}],
     "http":  [{"host": IP, "port": N, "tls_names": [name, ...] | null,
                "routes": {path: {"title": ..., "text": ...} | {"size": N}}}],
     "proxy": [{"host": IP, "port": N, "blocked": [name, ...], "title": ..., "text": ...}],
     "ca_out": PATH}
DNS rules are tests.fakes.dns_server's; HTTPS certificates come from one tests.fakes.certs FakePKI
whose CA is written to `ca_out` (the probe's --ca-bundle). Prints "ready" once everything
listens, then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.fakes.certs import FakePKI
from tests.fakes.dns_server import FakeDNSServer, Rule
from tests.fakes.servers import HTTPServer, Reply, page
from tests.lab.proxy import TransparentProxy


def _route(spec: dict[str, Any]) -> Reply:
    if "size" in spec:
        return Reply(mode="huge", size=int(spec["size"]))
    return page(spec.get("title", "lab"), spec.get("text", ""), int(spec.get("status", 200)))


def start(config: dict[str, Any], stack: ExitStack) -> None:
    """Start every server in `config`; `stack` stops them."""
    pki = FakePKI()
    if config.get("ca_out"):
        Path(config["ca_out"]).write_bytes(pki.ca_pem)
    for d in config.get("dns", []):
        host, port = d["listen"].rsplit(":", 1)
        rules = {name: Rule.from_dict(rule) for name, rule in d["rules"].items()}
        default = Rule.from_dict(d["default"]) if d.get("default") else None
        stack.enter_context(FakeDNSServer(rules, default, host=host, port=int(port)))
    for h in config.get("http", []):
        tls = pki.good(*h["tls_names"]) if h.get("tls_names") else None
        routes = {path: _route(spec) for path, spec in h["routes"].items()}
        stack.enter_context(HTTPServer(routes, tls=tls, host=h["host"], port=h["port"]))
    for p in config.get("proxy", []):
        stack.enter_context(TransparentProxy(set(p["blocked"]), _route(p), p["host"], p["port"]))


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with ExitStack() as stack:
        start(config, stack)
        print("ready", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

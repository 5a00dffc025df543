"""The lab's servers, run as one process inside a namespace: DNS and HTTP(S) fakes.

    python -m tests.lab.serve CONFIG.json

CONFIG: {"dns": [{"listen": "IP:PORT", "rules": {name: Rule fields}, "default": {...}}],
         "http": [{"host": IP, "port": N, "tls_names": [...] | null,
                   "routes": {path: {"title": ..., "text": ...} | {"size": N}}}],
         "ca_out": PATH | null}
Prints "ready" once everything listens, then serves until SIGTERM.
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


def _routes(spec: dict[str, dict[str, Any]]) -> dict[str, Reply]:
    routes = {}
    for path, route in spec.items():
        if "size" in route:
            routes[path] = Reply(mode="huge", size=int(route["size"]))
        else:
            routes[path] = page(route.get("title", "lab"), route.get("text", ""))
    return routes


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pki = FakePKI()
    if config.get("ca_out"):
        Path(config["ca_out"]).write_bytes(pki.ca_pem)
    with ExitStack() as stack:
        for d in config.get("dns", []):
            host, port = d["listen"].rsplit(":", 1)
            rules = {name: Rule.from_dict(r) for name, r in d["rules"].items()}
            default = Rule.from_dict(d["default"]) if d.get("default") else None
            stack.enter_context(FakeDNSServer(rules, default, host=host, port=int(port)))
        for h in config.get("http", []):
            tls = pki.good(*h["tls_names"]) if h.get("tls_names") else None
            stack.enter_context(HTTPServer(_routes(h["routes"]), tls=tls, host=h["host"],
                                           port=h["port"]))
        print("ready", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

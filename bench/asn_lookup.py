"""Benchmark: one ASN lookup in a full-size ip2asn table, the cost `--asn-table` adds per run.

    .venv/bin/python bench/asn_lookup.py [--ranges 500000]

Writes a synthetic table the size of iptoasn.com's combined file (RANGES IPv4 ranges spread over
the address space, a quarter as many IPv6 ranges after them), gzipped and plain, in a temporary
folder, then times lookups near the start, the middle and the end of each family. The end of a
family is the worst case: the whole family is read. Prints one JSON object with CPU seconds and
the peak memory. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.ipasn import lookup

V4_START, V4_END = 1 << 24, 0xDF000000  # 1.0.0.0 .. 223.0.0.0: the unicast space


def write_table(path: Path, ranges: int) -> None:
    step = (V4_END - V4_START) // ranges
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as out:
        for i in range(ranges):
            start = V4_START + i * step
            asn = 0 if i % 17 == 5 else 64512 + i % 1000
            out.write(f"{ipaddress.IPv4Address(start)}\t{ipaddress.IPv4Address(start + step - 1)}"
                      f"\t{asn}\t{'None' if asn == 0 else 'KE'}\tAS-{i}\n")
        for i in range(ranges // 4):
            first = (0x2001 << 112) + (i << 80)
            last = first + (1 << 80) - 1
            out.write(f"{ipaddress.IPv6Address(first)}\t{ipaddress.IPv6Address(last)}"
                      f"\t{64512 + i % 100}\tDE\tV6-{i}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranges", type=int, default=500_000)
    args = parser.parse_args()
    step = (V4_END - V4_START) // args.ranges
    last_v4 = ipaddress.IPv4Address(V4_START + (args.ranges - 1) * step + 1)
    last_v6 = ipaddress.IPv6Address((0x2001 << 112) + ((args.ranges // 4 - 1) << 80) + 1)
    probes = {"v4 start": "1.0.0.1", "v4 middle": "112.0.0.9", "v4 end": str(last_v4),
              "v6 end": str(last_v6)}
    result: dict[str, object] = {"ranges_v4": args.ranges, "ranges_v6": args.ranges // 4}
    with tempfile.TemporaryDirectory() as folder:
        for name in ("ip2asn.tsv", "ip2asn.tsv.gz"):
            path = Path(folder) / name
            write_table(path, args.ranges)
            times = {}
            for label, address in probes.items():
                began = time.process_time()
                found = lookup(path, address)
                times[label] = round(time.process_time() - began, 3)
                assert found is not None, (label, address)
            result[name] = {"mib": round(path.stat().st_size / 2**20, 1), "cpu_s": times}
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

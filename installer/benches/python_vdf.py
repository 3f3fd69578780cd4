#!/usr/bin/env python3
"""Load + dump a localconfig.vdf with PyPI's `vdf` package and print the time.

Counterpart of installer/benches/edit.rs (see its header):
    pip install vdf
    CGSPLIT_BENCH_OUT=/tmp/lc.vdf cargo bench -p cgsplit-install
    python3 installer/benches/python_vdf.py /tmp/lc.vdf [runs]
"""
import statistics
import sys
import time

import vdf


def main() -> None:
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with open(path, encoding="utf-8") as f:
        text = f.read()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        with open(path, encoding="utf-8") as f:
            data = vdf.load(f, mapper=vdf.VDFDict)
        out = vdf.dumps(data, pretty=True)
        times.append(time.perf_counter() - t)
    print(f"file: {len(text.encode())} bytes, runs: {runs}")
    print(f"python vdf load+dump: median {statistics.median(times) * 1e3:.2f} ms")
    print(f"dump identical to input: {out == text}")


if __name__ == "__main__":
    main()

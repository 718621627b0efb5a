#!/usr/bin/env python3
"""The lab's object storage: moto's S3-compatible server on one address, with its bucket made.

Harbor on S3/OBS stores blobs in a bucket and answers blob GETs with a 307 to a presigned
URL of the storage host (registry-s3, docs/lab.md "Object storage"). This runs moto's
server (PyPI moto[server], installed by scripts/test-deps.sh) in the foreground, creates
the bucket before it says it is ready, and stops on SIGTERM or SIGINT.

    storage.py --listen 127.0.0.1:9000 --bucket pullstorm-lab [--record FILE]

--record FILE: moto's request recorder writes every request the storage received (method,
URL, headers, body) to FILE, one JSON object a line: the storage side's own account of who
sent what (the lab's test checks that no presigned GET carried an Authorization header).
It records bodies too, so it is for small test images, not for load.
"""

import argparse
import os
import signal
import sys
import threading
import urllib.error
import urllib.request


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT")
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--record", help="append every request to this JSON-lines file")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        print(f"storage.py: --listen {args.listen!r}: expected HOST:PORT", file=sys.stderr)
        return 2
    if args.record:
        # Read by moto when it is imported: set before.
        os.environ["MOTO_ENABLE_RECORDING"] = "True"
        os.environ["MOTO_RECORDER_FILEPATH"] = os.path.abspath(args.record)
    try:
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    except ImportError as e:
        print(f"storage.py: moto's server is not installed ({e}): run scripts/test-deps.sh "
              "or: python3 -m pip install 'moto[server]'", file=sys.stderr)
        return 3

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    server = ThreadedMotoServer(ip_address=host, port=int(port), verbose=False)
    server.start()
    # CreateBucket, path style, unsigned: moto checks no signature unless its IAM
    # emulation is on. A bucket already there (409) is fine.
    req = urllib.request.Request(f"http://{host}:{port}/{args.bucket}", method="PUT", data=b"")
    try:
        urllib.request.urlopen(req, timeout=10).read()
    except urllib.error.HTTPError as e:
        if e.code != 409:
            print(f"storage.py: CreateBucket {args.bucket}: HTTP {e.code} {e.read()[:300]!r}",
                  file=sys.stderr)
            server.stop()
            return 1
    print(f"storage.py: S3 on http://{host}:{port}, bucket {args.bucket}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

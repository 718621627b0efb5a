#!/usr/bin/env python3
"""Moves one blob of registry-s3 to the GLACIER storage class, as an S3 lifecycle rule would.

The registry still lists the blob and still answers its GET with a 307 to a presigned URL,
but the storage refuses that URL: HTTP 403 with the S3 error code InvalidObjectState. A
real rejection by the storage, with its own code, for the lab's broken-signed-URL case
(docs/lab.md "Object storage"). moto's server checks neither the signature nor the expiry
of a presigned URL (its IAM emulation reads only the Authorization header), so a wrong key
or an old URL would still be served; an archived object is refused.

    archive.py --endpoint http://127.0.0.1:9000 --bucket pullstorm-lab --digest sha256:<hex>
"""

import argparse
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--digest", required=True, help="sha256:<hex> of the blob")
    args = ap.parse_args()
    algo, _, hexd = args.digest.partition(":")
    if algo != "sha256" or len(hexd) != 64:
        print(f"archive.py: --digest {args.digest!r}: expected sha256:<64 hex>", file=sys.stderr)
        return 2
    # The caller's AWS configuration (a CA bundle, a profile) is not the lab's.
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[k]
    import boto3  # comes with moto

    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="pullstorm-lab-access-key",
        aws_secret_access_key="pullstorm-lab-secret-key",
    )
    # registry-s3's rootdirectory is /registry; distribution's layout below it.
    key = f"registry/docker/registry/v2/blobs/sha256/{hexd[:2]}/{hexd}/data"
    s3.copy_object(
        Bucket=args.bucket,
        Key=key,
        CopySource={"Bucket": args.bucket, "Key": key},
        StorageClass="GLACIER",
        MetadataDirective="REPLACE",
    )
    print(f"archive.py: {args.bucket}/{key} is now GLACIER")
    return 0


if __name__ == "__main__":
    sys.exit(main())

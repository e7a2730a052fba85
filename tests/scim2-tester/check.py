"""Runs scim2-tester (an independent SCIM 2.0 conformance checker) against a
running Lyceum and prints one JSON object per check on stdout.

Usage: python3 check.py BASE_URL BEARER_KEY
  BASE_URL is the SCIM root, e.g. http://127.0.0.1:8000/scim/v2

Every check runs; the caller decides what passes. Exit status is 0 when the
checker ran to the end, whatever its findings.
"""

import json
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# Statuses that mean the server behaves as the RFCs require or allow.
PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


def main() -> int:
    base_url, key = sys.argv[1], sys.argv[2]
    http = httpx2.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client)
    for r in results:
        print(
            json.dumps(
                {
                    "status": r.status.name,
                    "passed": r.status in PASSING,
                    "title": r.title,
                    "resource_type": r.resource_type,
                    "reason": r.reason,
                    "tags": sorted(r.tags),
                    "data": repr(r.data)[:2000] if r.data is not None else None,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

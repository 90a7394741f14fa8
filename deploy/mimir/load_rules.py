"""Install OpenQoE's rule groups into Grafana Mimir's ruler, one tenant at a time.

    python deploy/mimir/load_rules.py --url http://mimir:9009 --tenant acme \
        deploy/prometheus/rules/*.yml

The ruler API takes ONE rule group per request (``POST <prefix>/config/v1/rules/<namespace>``
with the group as YAML); posting a whole multi-group file is what broke the original
OpenQoE loader. Groups are replaced by name, so running it again is safe. Grafana Cloud:
pass the Prometheus instance id and an access-policy token with --username/--password.
Cortex (the project Mimir was forked from) serves the same API at ``/api/v1/rules``:
``--rules-path /api/v1/rules`` (tests/integration/test_cortex.py loads into a real one).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
import yaml


def rule_groups(paths: Sequence[Path]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in paths:
        document = yaml.safe_load(path.read_text())
        groups.extend(document.get("groups", []))
    names = [g["name"] for g in groups]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SystemExit(f"duplicate rule group names: {sorted(duplicates)}")
    return groups


def load(
    url: str,
    tenant: str | None,
    namespace: str,
    groups: list[dict[str, Any]],
    auth: tuple[str, str] | None = None,
    prefix: str = "/prometheus",
    timeout_s: float = 30.0,
    rules_path: str | None = None,
) -> None:
    """POST every group to ``<url><rules_path>/<namespace>``.

    ``rules_path`` defaults to Mimir's ``<prefix>/config/v1/rules``.
    """
    path = rules_path or f"{prefix}/config/v1/rules"
    endpoint = f"{url.rstrip('/')}{path}/{namespace}"
    headers = {"Content-Type": "application/yaml"}
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    with requests.Session() as session:
        for group in groups:
            body = yaml.safe_dump(group, sort_keys=False)
            response = session.post(
                endpoint, data=body, headers=headers, auth=auth, timeout=timeout_s
            )
            if response.status_code not in (200, 202):
                raise SystemExit(
                    f"group {group['name']}: HTTP {response.status_code}: {response.text[:500]}"
                )
            print(f"loaded {group['name']} ({len(group['rules'])} rules) into {namespace}")  # noqa: T201


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--url", required=True, help="Mimir base URL, e.g. http://mimir:9009")
    parser.add_argument(
        "--tenant", action="append", default=[], help="X-Scope-OrgID; repeat for several"
    )
    parser.add_argument("--namespace", default="openqoe")
    parser.add_argument("--prefix", default="/prometheus", help="Mimir's Prometheus HTTP prefix")
    parser.add_argument(
        "--rules-path",
        help="ruler config API path, if not <prefix>/config/v1/rules (Cortex: /api/v1/rules)",
    )
    parser.add_argument("--username", default=os.environ.get("MIMIR_USERNAME"))
    parser.add_argument("--password", default=os.environ.get("MIMIR_PASSWORD"))
    args = parser.parse_args(argv)
    groups = rule_groups(args.files)
    auth = (args.username, args.password) if args.username and args.password else None
    for tenant in args.tenant or [None]:
        load(
            args.url, tenant, args.namespace, groups, auth, args.prefix, rules_path=args.rules_path
        )
    sys.exit(0)


if __name__ == "__main__":
    main()

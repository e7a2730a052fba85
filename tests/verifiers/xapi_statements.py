"""Validates xAPI statements with Ralph's pydantic models of xAPI 1.0.3.

Reads one JSON array of statements on standard input (as an LRS returns them
from GET /statements, so `stored`, `authority` and `version` may be present),
validates each with `ralph.models.xapi.base.statements.BaseXapiStatement`
(strict: unknown properties, wrong types, a missing actor identifier, a
non-IRI verb or object id are errors) and checks that every statement has a
`timestamp`, which Lyceum promises. Prints one line per problem and exits 1
when there is any, 0 otherwise.
"""

import json
import sys

from pydantic import ValidationError
from ralph.models.xapi.base.statements import BaseXapiStatement


def main() -> int:
    statements = json.load(sys.stdin)
    if not isinstance(statements, list):
        print("input is not a JSON array of statements")
        return 1
    problems = []
    for index, statement in enumerate(statements):
        sid = statement.get("id", f"#{index}") if isinstance(statement, dict) else f"#{index}"
        try:
            BaseXapiStatement.model_validate(statement)
        except ValidationError as error:
            for e in error.errors():
                where = ".".join(str(p) for p in e["loc"])
                problems.append(f"{sid}: {where}: {e['msg']}")
        if not isinstance(statement, dict) or not statement.get("timestamp"):
            problems.append(f"{sid}: timestamp missing")
    for p in problems:
        print(p)
    print(f"{len(statements)} statements checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

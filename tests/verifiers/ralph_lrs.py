"""Runs Ralph's LRS API on its filesystem backend: `ralph_lrs.py HOST PORT DIR`.

Credentials come from the file named by RALPH_AUTH_FILE (written by
`ralph auth`). Ralph's filesystem LRS backend writes with its data backend's
default mode, CREATE, which refuses any write once the statements file
exists, so the second POST of a session fails with 500. The backend also
supports APPEND, the mode a growing statements file needs; this launcher
makes it the default and otherwise serves Ralph's own application unchanged.
"""

import os
import sys


def main() -> None:
    host, port, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # Ralph reads its settings when its modules are first imported.
    os.environ["RALPH_RUNSERVER_BACKEND"] = "fs"
    os.environ["RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH"] = directory
    os.makedirs(directory, exist_ok=True)

    import uvicorn
    from ralph.backends.data.base import BaseOperationType
    from ralph.backends.lrs.fs import FSLRSBackend

    FSLRSBackend.default_operation_type = BaseOperationType.APPEND

    uvicorn.run("ralph.api:app", host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()

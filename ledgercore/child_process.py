"""Starting ledgercore's own modules as child processes (cluster nodes, benchmark nodes)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any


def module_process(module: str, args: list[str], *, cwd: str | os.PathLike[str], **popen: Any) -> subprocess.Popen[Any]:
    """Starts ``python -m module args`` with this interpreter, in ``cwd``.

    ``python -m`` puts its working directory first on ``sys.path``. Started from a source checkout
    (where the README's ``pip install .`` runs), the checkout's ``ledgercore/``, which has no built
    extension, would shadow the installed package and the child would die on import; so the child
    runs in a directory of its own, never the caller's."""
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, **popen)

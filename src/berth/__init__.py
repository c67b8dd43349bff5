"""berth: a container engine for Linux, usable as a command and as a Python library.

    import berth
    engine = berth.Engine()
    print(engine.containers.run("busybox", ["echo", "hi"]))

The package imports lazily so the ``berth`` command starts fast.
"""

TYPE_CHECKING = False

__version__ = "0.1.0"
__all__ = ["BerthError", "Engine", "__version__"]

if TYPE_CHECKING:
    from typing import Any

    from berth.engine import Engine
    from berth.errors import BerthError


def __getattr__(name: str) -> "Any":  # a string: no __future__ import on the start path
    if name == "Engine":
        from berth.engine import Engine

        return Engine
    if name == "BerthError":
        from berth.errors import BerthError

        return BerthError
    raise AttributeError(f"module 'berth' has no attribute {name!r}")

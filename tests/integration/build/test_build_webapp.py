"""The seed's example: a Flask app on ``python:3.9``, built for real.

Docker Hub is out of reach, so ``python:3.9`` is a local stand-in built by berth from
``debian:bookworm`` (made by ``berth image bootstrap``) with Debian's python3 and
python3-flask (bookworm's pip refuses system-wide installs). The seed's ``RUN pip install
flask`` becomes a check that flask imports. Then the app runs as the seed runs it, detached
with its port published, and answers on the host's loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.integration.build.conftest import BuildCLI
from tests.integration.build.test_build_basic import _files

pytestmark = [pytest.mark.root, pytest.mark.slow]

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "dockerfiles", "webapp")
PYTHON_STAND_IN = """\
FROM debian:bookworm
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 python3-flask \\
 && rm -rf /var/lib/apt/lists/* \\
 && ln -s /usr/bin/python3 /usr/local/bin/python
ENV LANG=C.UTF-8
CMD ["python3"]
"""


@pytest.fixture(scope="session")
def python_store() -> Iterator[str]:
    """A store with debian:bookworm and the python:3.9 stand-in, made once per session."""
    root = tempfile.mkdtemp(prefix="berth-store-python-", dir="/var/tmp")
    cli = BuildCLI(root)
    context = tempfile.mkdtemp(prefix="berth-ctx-python-", dir="/var/tmp")
    try:
        cli("image", "bootstrap", "-q", "debian:bookworm", timeout=1200)
        with open(os.path.join(context, "Dockerfile"), "w") as f:
            f.write(PYTHON_STAND_IN)
        result = cli.build(context, "-t", "python:3.9")
        assert result.returncode == 0, result.stderr[-3000:]
        yield root
    finally:
        from berth.store.paths import StorePaths
        from tests.conftest import release_store

        release_store(root)
        shutil.rmtree(context, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(StorePaths.at(root).run_dir, ignore_errors=True)


def test_the_flask_app_builds(python_store, tmp_path):
    cli = BuildCLI(python_store)
    context = tmp_path / "app"
    shutil.copytree(os.path.join(FIXTURE, "context"), context)
    with open(os.path.join(FIXTURE, "Dockerfile")) as f:
        dockerfile = f.read()
    assert "RUN pip install flask" in dockerfile
    dockerfile = dockerfile.replace(
        "RUN pip install flask", 'RUN python -c "import flask; print(flask.__name__)"'
    )
    (context / "Dockerfile").write_text(dockerfile)
    result = cli.build(str(context), "-t", "webapp")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "#" in result.stderr and " flask" in result.stderr
    config = json.loads(cli("image", "inspect", "webapp"))[0]["Config"]
    assert config["ExposedPorts"] == {"5000/tcp": {}}
    assert config["Cmd"] == ["python", "app.py"]
    assert config["WorkingDir"] == "/app"
    files = _files(cli, "webapp")
    with open(os.path.join(FIXTURE, "context", "app.py"), "rb") as f:
        assert files["app/app.py"] == f.read()
    # the app's module loads and answers through Flask's test client, inside a build step
    check = tmp_path / "check"
    check.mkdir()
    (check / "Dockerfile").write_text(
        'FROM webapp\nRUN python -c "import app; '
        "r = app.app.test_client().get('/'); assert r.data == b'hello', r.data\"\n"
    )
    answered = cli.build(str(check))
    assert answered.returncode == 0, answered.stderr[-3000:]
    history = cli("history", "--no-trunc", "--format", "{{.CreatedBy}}", "webapp").splitlines()
    assert history[0] == 'CMD ["python" "app.py"]'
    assert "COPY . /app # buildkit" in history
    # the app runs and answers through its published port
    port = _free_port()
    cli("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:5000", "webapp")
    try:
        assert _fetch(f"http://127.0.0.1:{port}/") == b"hello"
    finally:
        cli.run("rm", "-f", "web")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fetch(url: str, timeout: float = 60) -> bytes:
    """The page at ``url``, once the server answers (Flask takes a moment to start)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bytes(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

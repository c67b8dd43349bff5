"""OCI hooks: every stage runs, in the namespaces the spec names, with the state on stdin."""

from __future__ import annotations

import json
import os

import pytest

from berth.errors import ContainerError
from berth.runtime.container import Runtime
from tests.integration.runtime.helpers import BundleFactory, new_id

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_sanity")]

HOST_STAGES = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")


def _hook(log_dir: str, stage: str, sh: str = "/bin/sh") -> dict:  # type: ignore[type-arg]
    script = (
        f'cat > {log_dir}/{stage}.json; '
        f'stat -L -c %i /proc/self/ns/uts > {log_dir}/{stage}.uts; '
        f'echo "$BERTH_HOOK" > {log_dir}/{stage}.env'
    )
    return {"path": sh, "args": ["sh", "-c", script], "env": [f"BERTH_HOOK={stage}"]}


def test_every_stage_runs_with_the_state(runtime: Runtime, bundle: BundleFactory,
                                         workdir: str) -> None:
    log_dir = os.path.join(workdir, "hooks")
    os.makedirs(log_dir)
    spec = bundle.spec(["true"])
    spec["hooks"] = {stage: [_hook(log_dir, stage)] for stage in HOST_STAGES}
    # startContainer runs in the container after pivot_root: its path and output are there
    spec["mounts"].append({"destination": "/hooks", "type": "bind", "source": log_dir,
                           "options": ["rbind", "rw"]})
    spec["hooks"]["startContainer"] = [_hook("/hooks", "startContainer")]
    spec["annotations"] = {"org.example": "yes"}
    cid = new_id()
    path = bundle.write(spec)
    record = runtime.create(cid, path)
    for stage in ("prestart", "createRuntime", "createContainer"):
        assert os.path.exists(os.path.join(log_dir, f"{stage}.json")), stage
    assert not os.path.exists(os.path.join(log_dir, "startContainer.json"))
    runtime.start(cid)
    assert runtime.wait(cid) == 0
    runtime.delete(cid)
    host_uts = os.stat("/proc/self/ns/uts").st_ino
    for stage in (*HOST_STAGES, "startContainer"):
        with open(os.path.join(log_dir, f"{stage}.json")) as f:
            state = json.load(f)
        assert state["id"] == cid
        assert state["bundle"] == path
        assert state["pid"] == record.pid
        assert state["annotations"] == {"org.example": "yes"}
        with open(os.path.join(log_dir, f"{stage}.env")) as f:
            assert f.read().strip() == stage
        with open(os.path.join(log_dir, f"{stage}.uts")) as f:
            uts = int(f.read())
        in_container = stage in ("createContainer", "startContainer")
        assert (uts != host_uts) == in_container, stage
    with open(os.path.join(log_dir, "poststop.json")) as f:
        assert json.load(f)["status"] == "stopped"


def test_a_failing_hook_fails_create(runtime: Runtime, bundle: BundleFactory) -> None:
    spec = bundle.spec(["true"])
    spec["hooks"] = {"createRuntime": [{"path": "/bin/sh",
                                        "args": ["sh", "-c", "echo no way >&2; exit 3"]}]}
    with pytest.raises(ContainerError, match=r"createRuntime hook /bin/sh failed "
                                             r"\(exit status 3\): no way"):
        runtime.create(new_id(), bundle.write(spec))
    assert runtime.list_containers() == []


def test_a_hook_that_times_out_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    spec = bundle.spec(["true"])
    spec["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"],
                                   "timeout": 1}]}
    with pytest.raises(ContainerError, match="timed out after 1 s"):
        runtime.create(new_id(), bundle.write(spec))


def test_a_failing_poststart_hook_is_only_a_warning(runtime: Runtime,
                                                    bundle: BundleFactory) -> None:
    spec = bundle.spec(["true"])
    spec["hooks"] = {"poststart": [{"path": "/bin/false"}], "poststop": [{"path": "/bin/false"}]}
    cid = new_id()
    runtime.create(cid, bundle.write(spec))
    runtime.start(cid)
    assert runtime.wait(cid) == 0
    runtime.delete(cid)

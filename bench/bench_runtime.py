"""The OCI runtime's start latency: ``berth-runtime run`` vs ``runc run`` vs ``crun run`` on one
busybox bundle running ``true``, and where berth-runtime's time goes.

    .venv/bin/python bench/bench_runtime.py [--runs 30] [--no-profile]

1. Side by side, interleaved, fresh processes: the three commands (berth-runtime through the
   virtual environment's interpreter, as its console script), medians and ratios.
2. In one warm process (the engine's case: ``berth run`` calls the runtime in-process):
   ``Runtime.run`` of the same bundle, first and later runs.
3. A profile of one fresh ``berth-runtime run``: the biggest imports (``-X importtime``) and
   perf_counter checkpoints of the phases (interpreter start, imports, create, start, wait,
   delete).

Byte-code is written (PYTHONDONTWRITEBYTECODE unset for the children) and every command warms
up once, so the numbers are those of an installed berth. Needs root; leaves nothing behind
(crun gets the v1 hugetlb hierarchy it wants on this v1/v2 hybrid, mounted if missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.rootfs import make_busybox_rootfs

VENV_BIN = os.path.dirname(sys.executable)
BERTH_RUNTIME = os.path.join(VENV_BIN, "berth-runtime")
RUNC = "/usr/sbin/runc"
CRUN = "/usr/bin/crun"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

SPEC_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def runc_spec(args: list[str]) -> dict[str, object]:
    """``runc spec`` (runc 1.1) without a terminal, running ``args``."""
    with tempfile.TemporaryDirectory(prefix="berth-bench-spec-") as tmp:
        subprocess.run([RUNC, "spec", "--bundle", tmp], check=True)
        with open(os.path.join(tmp, "config.json")) as f:
            spec: dict[str, object] = json.load(f)
    process = spec["process"]
    assert isinstance(process, dict)
    process["terminal"] = False
    process["args"] = args
    # runc silently fails to raise ambient capabilities when inheritable is empty
    process["capabilities"].pop("ambient", None)
    return spec


def make_bundle(work: str) -> str:
    bundle = os.path.join(work, "bundle")
    os.makedirs(os.path.join(bundle, "rootfs"))
    make_busybox_rootfs(os.path.join(bundle, "rootfs"))
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(runc_spec(["true"]), f)
    return bundle


def commands(work: str, bundle: str) -> dict[str, list[str]]:
    return {
        "berth-runtime run": [BERTH_RUNTIME, "--root", f"{work}/berth", "run", "--bundle",
                              bundle],
        "runc run": [RUNC, "--root", f"{work}/runc", "run", "--bundle", bundle],
        "crun run": [CRUN, "--root", f"{work}/crun", "run", "--bundle", bundle],
    }


def ensure_hugetlb_v1() -> None:
    target = "/sys/fs/cgroup/hugetlb"
    if not os.path.ismount(target):
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", target], check=False)


def side_by_side(cmds: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    for i in range(runs + 1):
        for name, cmd in cmds.items():
            start = time.perf_counter()
            subprocess.run([*cmd, f"bench-{i}"], check=True, env=ENV, stdin=subprocess.DEVNULL)
            elapsed = time.perf_counter() - start
            if i:
                samples[name].append(elapsed)
    return samples


def report(title: str, results: dict[str, list[float]], baseline: str) -> None:
    print(f"\n== {title}")
    base = statistics.median(results[baseline])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:<28} median {median * 1000:7.1f} ms  (min {min(values) * 1000:6.1f}, "
              f"n={len(values)})  ratio vs {baseline}: {median / base:.2f}")


IN_PROCESS = r"""
import os, sys, time, json
t0 = time.perf_counter()
from berth.runtime.container import Runtime
imported = time.perf_counter() - t0
rt = Runtime(sys.argv[1])
null = os.open(os.devnull, os.O_RDWR)
times = []
for i in range(int(sys.argv[3])):
    s = time.perf_counter()
    rt.run(f"inproc-{i}", sys.argv[2], stdio=(null, null, null))
    times.append(time.perf_counter() - s)
print(json.dumps({"import": imported, "runs": times}))
"""

PHASES = r"""
import os, sys, time, json
marks = {"interpreter": time.perf_counter()}
from berth.runtime.container import Runtime
from berth.runtime import cgroup_adapter, process
marks["imports"] = time.perf_counter()
rt = Runtime(sys.argv[1])
orig_create, orig_start, orig_delete = Runtime._create, Runtime.start, Runtime.delete
def create(self, *a, **k):
    out = orig_create(self, *a, **k); marks["create"] = time.perf_counter(); return out
def start(self, *a, **k):
    out = orig_start(self, *a, **k); marks["start"] = time.perf_counter(); return out
def delete(self, *a, **k):
    marks["wait"] = time.perf_counter(); out = orig_delete(self, *a, **k)
    marks["delete"] = time.perf_counter(); return out
Runtime._create, Runtime.start, Runtime.delete = create, start, delete
rt.run("phases", sys.argv[2])
print(json.dumps(marks))
"""


def in_process(work: str, bundle: str, runs: int) -> None:
    out = subprocess.run([sys.executable, "-c", IN_PROCESS, f"{work}/inproc", bundle,
                          str(runs + 1)], check=True, capture_output=True, text=True, env=ENV)
    data = json.loads(out.stdout)
    later = data["runs"][1:]
    print("\n== in one process (the engine's path): Runtime.run of the same bundle")
    print(f"  import berth.runtime.container   {data['import'] * 1000:7.1f} ms")
    print(f"  first run                        {data['runs'][0] * 1000:7.1f} ms")
    print(f"  later runs                median {statistics.median(later) * 1000:7.1f} ms "
          f"(min {min(later) * 1000:.1f}, n={len(later)})")


def profile(work: str, bundle: str) -> None:
    # where the time of one fresh run goes: interpreter start is measured as the time to the
    # first line of the script, against the wall clock of the whole process
    walls = []
    marks_list = []
    for i in range(7):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", PHASES, f"{work}/phases{i}", bundle],
                             check=True, capture_output=True, text=True, env=ENV)
        walls.append(time.perf_counter() - start)
        marks_list.append(json.loads(out.stdout))
    marks = marks_list[walls.index(statistics.median_low(walls))]
    wall = statistics.median_low(walls)
    order = ["interpreter", "imports", "create", "start", "wait", "delete"]
    print("\n== one fresh run, phase by phase (median of 7; perf_counter checkpoints)")
    print(f"  whole process (wall)             {wall * 1000:7.1f} ms")
    previous = marks["interpreter"]
    for name in order[1:]:
        print(f"  {name:<32} {(marks[name] - previous) * 1000:7.1f} ms")
        previous = marks[name]
    print(f"  interpreter start + exit (rest)  "
          f"{(wall - (marks['delete'] - marks['interpreter'])) * 1000:7.1f} ms")
    script = ("import sys; sys.argv = sys.argv[1:]; from berth.runtime.cli import main; "
              "sys.exit(main())")
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", script, "berth-runtime",
                          "--root", f"{work}/imports", "run", "--bundle", bundle, "imports"],
                         capture_output=True, text=True, env=ENV, check=False).stderr
    top_level = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, total, module = line.split(":", 1)[1].split("|")
        if not module[1:].startswith(" "):
            top_level.append((int(total), module.strip()))
    print("\n== imports of berth-runtime run (-X importtime, top-level modules, cumulative)")
    for micros, module in sorted(top_level, reverse=True)[:14]:
        print(f"  {module:<40} {micros / 1000:7.1f} ms")
    print(f"  {'all imports':<40} {sum(c for c, _ in top_level) / 1000:7.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true")
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    ensure_hugetlb_v1()
    work = tempfile.mkdtemp(prefix="berth-bench-runtime-", dir="/var/tmp")
    try:
        bundle = make_bundle(work)
        results = side_by_side(commands(work, bundle), options.runs)
        report("run of a busybox bundle running `true` (fresh process each run, interleaved)",
               results, "runc run")
        in_process(work, bundle, options.runs)
        if not options.no_profile:
            profile(work, bundle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

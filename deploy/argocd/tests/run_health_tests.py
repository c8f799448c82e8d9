#!/usr/bin/env python3
"""Runs the ArgoCD health checks in ../resource_customizations against their fixtures with a real Lua.

Each <group>/<Kind>/health_test.yaml has argo-cd's format:

    tests:
    - healthStatus: {status: Degraded, message: "..."}
      inputPath: testdata/failed.yaml

For every case the fixture object becomes the global `obj` (as ArgoCD sets it), health.lua runs as
the body of a function (ArgoCD runs it as a chunk that ends in `return hs`), and the returned status
and message must equal the expected ones exactly.

Usage: run_health_tests.py [--lua PATH]...   (default: lua5.4 from PATH). Needs PyYAML.
Give --lua more than once to run every case on each interpreter: ArgoCD embeds gopher-lua, which
implements Lua 5.1, so CI runs both Debian's lua5.1 and lua5.4 when it can.
Prints `argocd-health: N passed, M failed` and exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

CUSTOMIZATIONS = Path(__file__).resolve().parent.parent / "resource_customizations"


def lua_string(s: str) -> str:
    out = ['"']
    for byte in s.encode("utf-8"):
        ch = chr(byte)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            # Decimal escapes are understood by Lua 5.1 and 5.4 alike; three digits avoid ambiguity.
            out.append(f"\\{byte:03d}")
    out.append('"')
    return "".join(out)


def lua_literal(value) -> str:
    """Converts decoded JSON/YAML into a Lua table constructor, the way ArgoCD hands `obj` to Lua."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        # The API server sends RFC 3339 strings; YAML's timestamp resolution must not change that.
        text = value.isoformat().replace("+00:00", "Z")
        return lua_string(text)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_string(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot express {type(value).__name__} in Lua")


RUNNER = """
obj = {obj}
local function health()
{script}
end
local hs = health()
if type(hs) ~= "table" then error("health.lua returned " .. type(hs) .. ", not a table") end
io.write(tostring(hs.status), "\\n", tostring(hs.message))
"""


def run_case(lua: str, script: str, obj: dict) -> tuple[str, str]:
    program = RUNNER.format(obj=lua_literal(obj), script=script)
    proc = subprocess.run([lua, "-"], input=program, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    status, _, message = proc.stdout.partition("\n")
    return status, message


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lua", action="append", help="Lua interpreter (repeatable)")
    args = parser.parse_args()
    interpreters = args.lua or [shutil.which("lua5.4") or "lua5.4"]

    passed = failed = 0
    suites = sorted(CUSTOMIZATIONS.glob("*/*/health_test.yaml"))
    if not suites:
        print(f"no health_test.yaml under {CUSTOMIZATIONS}")
        return 1
    for suite in suites:
        kind_dir = suite.parent
        script = (kind_dir / "health.lua").read_text()
        kind = f"{kind_dir.parent.name}/{kind_dir.name}"
        for case in yaml.safe_load(suite.read_text())["tests"]:
            want = case["healthStatus"]
            obj = yaml.safe_load((kind_dir / case["inputPath"]).read_text())
            for lua in interpreters:
                label = f"{kind} {case['inputPath']} [{Path(lua).name}]"
                try:
                    status, message = run_case(lua, script, obj)
                except (OSError, RuntimeError, subprocess.TimeoutExpired) as err:
                    failed += 1
                    print(f"FAIL {label}: Lua error: {err}")
                    continue
                if (status, message) == (want["status"], want["message"]):
                    passed += 1
                    print(f"ok   {label}: {status}")
                else:
                    failed += 1
                    print(f"FAIL {label}:\n       got  {status}: {message}\n       want {want['status']}: {want['message']}")
    print(f"argocd-health: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())

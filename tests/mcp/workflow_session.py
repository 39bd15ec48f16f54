"""An agent's session with a Workflow, through the official MCP Python SDK.

Run by tests/mcp.rs: applies a Workflow (a build node, a matrix of two, an approval
gate), runs it with an input through run_workflow, retries with the same
idempotency_key and gets the same run, reads the compact DAG with get_workflow, runs a
failing one, decides the approval gate (approve_node) and asks for reruns
(rerun_workflow), reading back what each wrote with get_resource. Mistakes come back as
tool errors that say what to do. Exits non-zero on the first failure.

    workflow_session.py --http URL
    workflow_session.py -- BIN [ARG...]
"""

import argparse
import asyncio
import json
import os
import sys
import time
import uuid

from mcp import Client, StdioServerParameters
from session_checks import expect, log, server_of, text_of

WORKFLOW_TOOLS = {"run_workflow", "get_workflow", "approve_node", "rerun_workflow"}


def workflow_yaml(name):
    # The schedule is not due for months: applying starts no run, so every run here is
    # one the session asked for.
    return f"""apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: {name}
spec:
  schedule: "0 0 1 1 *"
  inputs: [{{name: outcome, default: ok}}]
  jobs:
    - name: build
      job: {{image: busybox:latest, steps: [{{name: b, run: 'echo build ${{{{ inputs.outcome }}}}'}}]}}
    - name: test
      needs: [build]
      matrix: {{shard: ["1", "2"]}}
      job: {{image: busybox:latest, steps: [{{name: t, run: 'test "${{{{ inputs.outcome }}}}" = ok'}}]}}
    - name: ship
      needs: [test]
      approval: {{message: "ship it?"}}
      job: {{image: busybox:latest, steps: [{{name: s, run: 'sleep 6'}}]}}
"""


async def call(client, name, arguments, *, error=False):
    started = time.monotonic()
    result = await client.call_tool(name, arguments)
    log(f"{name}({json.dumps(arguments)[:90]}) -> is_error={result.is_error} in {time.monotonic() - started:.1f}s")
    expect(bool(result.is_error) == error, f"{name}: expected is_error={error}", result)
    expect(text_of(result), f"{name}: the answer has no text", result)
    expect(len(text_of(result)) < 20_000, f"{name}: the answer is too long for a model", result)
    return result


async def scenario(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    expect(WORKFLOW_TOOLS <= set(tools), f"missing tools: {sorted(WORKFLOW_TOOLS - set(tools))}")

    name = f"agentwf-{uuid.uuid4().hex[:6]}"
    await call(client, "apply_resource", {"yaml": workflow_yaml(name)})

    result = await call(client, "run_workflow", {"name": name, "inputs": {"colour": "red"}}, error=True)
    expect('"colour"' in text_of(result) and "outcome" in text_of(result),
           "an undeclared input names itself and the declared ones", result)

    key = f"agent-{uuid.uuid4().hex[:8]}"
    args = {"name": name, "inputs": {"outcome": "bad"}, "idempotency_key": key, "max_wait_seconds": 120}
    result = await call(client, "run_workflow", args)
    data = result.structured_content
    expect(data["finished"] and data["phase"] == "Failed" and data["run"] == 1,
           "run_workflow waits for the run and reports it failed", result)
    expect("test" in text_of(result) and "Failed" in text_of(result), "the DAG says which node failed", result)

    result = await call(client, "run_workflow", args)
    expect(result.structured_content["run"] == 1, "the same idempotency_key answers the same run", result)

    result = await call(client, "get_workflow", {"name": name})
    data = result.structured_content
    nodes = {n["name"]: n for n in data["nodes"]}
    expect(data["run"] == 1 and data["phase"] == "Failed", "get_workflow: the run and its phase", result)
    expect(nodes["build"]["phase"] == "Succeeded" and nodes["build"]["layer"] == 1, "build is layer 1", result)
    expect(nodes["test"]["needs"] == ["build"] and len(nodes["test"]["combinations"]) == 2,
           "a matrix node groups its combinations", result)
    expect(nodes["test"]["phase"] == "Failed", "a failed combination fails its node", result)
    expect(nodes["ship"]["approval"] and nodes["ship"]["phase"] == "Skipped",
           "the gate after a failure is skipped", result)

    result = await call(client, "approve_node", {"name": name, "node": "ship"}, error=True)
    expect("ended" in text_of(result), "a finished run has nothing to approve", result)

    # A run that succeeds up to the gate.
    result = await call(client, "run_workflow", {"name": name, "wait": False})
    deadline = time.monotonic() + 60
    while True:
        result = await call(client, "get_workflow", {"name": name})
        data = result.structured_content
        if data["run"] == 2:
            break
        expect(time.monotonic() < deadline, "run 2 never started", result)
        await asyncio.sleep(0.5)
    result = await call(client, "approve_node", {"name": name, "node": "nowhere"}, error=True)
    expect("ship" in text_of(result), "an unknown node lists the approval gates", result)
    result = await call(client, "approve_node", {"name": name, "node": "build"}, error=True)
    expect("no approval gate" in text_of(result), "a node without a gate is refused", result)
    if data["phase"] not in ("Succeeded", "Failed", "Cancelled"):
        result = await call(client, "approve_node",
                            {"name": name, "node": "ship", "approve": False, "message": "not now"})
        expect(result.structured_content["approved"] is False and result.structured_content["run"] == 2,
               "approve_node records a rejection for run 2", result)

    result = await call(client, "rerun_workflow", {"name": name, "mode": "sometimes"}, error=True)
    expect("failed" in text_of(result), "a bad mode lists the modes", result)
    result = await call(client, "rerun_workflow", {"name": name, "from": "nowhere"}, error=True)
    expect("build, test, ship" in text_of(result), "an unknown node lists the nodes", result)
    result = await call(client, "rerun_workflow", {"name": name, "mode": "failed"})
    expect(result.structured_content["token"], "rerun_workflow answers its token", result)
    expect("get_workflow" in text_of(result), "the answer says how to follow", result)

    await call(client, "delete_resource", {"kind": "workflow", "name": name})


def main():
    argv = sys.argv[1:]
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    options = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--http", metavar="URL")
    args = parser.parse_args(options)
    if bool(args.http) == bool(command):
        parser.error("give either --http URL or -- COMMAND [ARG...]")
    server = server_of(args.http, command)

    async def session():
        async with Client(server, read_timeout_seconds=180) as client:
            await scenario(client)

    asyncio.run(session())
    log("all checks passed")


if __name__ == "__main__":
    main()

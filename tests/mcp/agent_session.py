"""An agent's session with orcaops, through the official MCP Python SDK.

Run by tests/mcp.rs with the venv that scripts/setup.sh prepares. Connects over
stdio (spawning `orcaops mcp`) or streamable HTTP (`<server>/mcp`), then plays a
scenario and checks each answer the way a model would read it. Prints one line
per check to stderr; exits non-zero with the reason on the first failure.

    agent_session.py [--scenario full|basic] [--mode auto|legacy] --http URL
    agent_session.py [--scenario full|basic] [--mode auto|legacy] -- BIN [ARG...]
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

TOOLS = {
    "run_job",
    "apply_resource",
    "get_resource",
    "list_resources",
    "get_logs",
    "cancel_job",
    "delete_resource",
    "list_containers",
    "search_runs",
}

TYPO_YAML = """apiVersion: orcaops.dev/v1alpha1
kind: Job
metadata:
  name: typo
spec:
  image: busybox:latest
  steps:
    - name: greet
      comand: ["echo", "hi"]
"""


async def call(client, name, arguments, *, error=False, progress=None):
    started = time.monotonic()
    result = await client.call_tool(name, arguments, progress_callback=progress)
    log(f"{name}({json.dumps(arguments)[:80]}) -> is_error={result.is_error} in {time.monotonic() - started:.1f}s")
    expect(bool(result.is_error) == error, f"{name}: expected is_error={error}", result)
    expect(result.content and text_of(result), f"{name}: the answer has no text", result)
    expect(len(text_of(result)) < 20_000, f"{name}: the answer is too long for a model", result)
    return result


async def list_tools(client):
    tools = (await client.list_tools()).tools
    names = {t.name for t in tools}
    expect(TOOLS <= names, f"tools missing: {sorted(TOOLS - names)}; listed {sorted(names)}")
    for tool in tools:
        schema = tool.input_schema
        expect(schema.get("type") == "object", f"{tool.name}: input schema is not an object: {schema}")
        expect(tool.description, f"{tool.name}: no description")
    run_job = next(t for t in tools if t.name == "run_job")
    props = run_job.input_schema.get("properties", {})
    expect({"image", "commands", "wait", "timeout_seconds"} <= set(props), f"run_job schema: {props}")
    log(f"listed {len(tools)} tools, each with an input schema")


async def run_hello(client):
    result = await call(client, "run_job", {"image": "busybox:latest", "commands": ["echo hello"]})
    data = result.structured_content
    expect(data["phase"] == "Succeeded", "run_job: the job did not succeed", result)
    expect([s["exitCode"] for s in data["steps"]] == [0], "run_job: exit codes", result)
    expect("hello" in data["logTail"] and "hello" in text_of(result), "run_job: no hello in the tail", result)
    expect("Succeeded" in text_of(result), "run_job: the text does not say Succeeded", result)
    log(f"run_job: {text_of(result).splitlines()[0]}")
    return data["job"]


async def bad_arguments(client):
    result = await call(client, "run_job", {"commands": ["echo no image"]}, error=True)
    expect("image" in text_of(result), "run_job without image: the error should name the field", result)
    result = await call(client, "run_job", {"image": "busybox:latest"}, error=True)
    expect("commands" in text_of(result), "run_job without commands: say what to give", result)


async def apply_typo(client):
    result = await call(client, "apply_resource", {"yaml": TYPO_YAML}, error=True)
    text = text_of(result)
    expect("did you mean" in text, "apply typo: no 'did you mean'", result)
    expect("<yaml>:9:" in text and "fix:" in text, "apply typo: no line/column or fix", result)
    fixed = TYPO_YAML.replace("comand", "command")
    result = await call(client, "apply_resource", {"yaml": fixed})
    expect("job.orcaops.dev/typo created" in text_of(result), "apply: not created", result)
    await call(client, "delete_resource", {"kind": "job", "name": "typo"})


async def logs(client, job):
    result = await call(client, "get_logs", {"job": job})
    expect("hello" in result.structured_content["text"], "get_logs: no hello", result)
    result = await call(client, "get_logs", {"job": job, "step": "nope"}, error=True)
    expect("step-1" in text_of(result), "get_logs with a wrong step: list the steps", result)
    result = await call(client, "get_logs", {"job": "no-such-job"}, error=True)
    expect("list_resources" in text_of(result), "get_logs of a missing job: say how to list jobs", result)


async def inspect(client, job):
    result = await call(client, "get_resource", {"kind": "job", "name": job})
    status = result.structured_content["status"]
    expect(status["phase"] == "Succeeded" and status["steps"][0]["exitCode"] == 0, "get_resource", result)
    result = await call(client, "list_resources", {"kind": "jobs"})
    expect(job in text_of(result), "list_resources: the job is missing", result)
    result = await call(client, "get_resource", {"kind": "job", "name": "missing"}, error=True)
    expect("list_resources" in text_of(result), "get_resource of a missing job: say how to list", result)
    result = await call(client, "get_resource", {"kind": "pods", "name": "x"}, error=True)
    expect("unknown kind" in text_of(result), "get_resource of an unknown kind", result)


async def search_past_failures(client):
    """An agent finds when an error happened before, across jobs."""
    marker = f"zeta{uuid.uuid4().hex[:8]}"
    result = await call(client, "run_job", {
        "image": "busybox:latest",
        "commands": [f"echo 'error: cannot open {marker}.conf'; exit 4"],
    })
    failed = result.structured_content["job"]
    expect(result.structured_content["phase"] == "Failed", "the failing job did not fail", result)
    result = await call(client, "search_runs", {"grep": f"{marker}.conf"})
    runs = result.structured_content["runs"]
    expect([r["job"] for r in runs] == [failed], f"search_runs by error text found {runs}", result)
    expect(marker in (runs[0]["matched"] or ""), "search_runs: the matched line is missing", result)
    expect("get_logs" in text_of(result), "search_runs: say how to read a run's output", result)
    result = await call(client, "search_runs", {"phase": "Failed", "workspace": "default", "limit": 5})
    expect(failed in [r["job"] for r in result.structured_content["runs"]], "search_runs by phase", result)
    result = await call(client, "search_runs", {"grep": f"{marker} nowhere"})
    expect(result.structured_content["runs"] == [] and "no run matches" in text_of(result), "search_runs: no match", result)
    result = await call(client, "search_runs", {"phase": "Broken"}, error=True)
    expect("Succeeded, Failed, TimedOut, Cancelled" in text_of(result), "search_runs: a bad phase names the good ones", result)
    log(f"search_runs: found {failed} by its error line")


async def progress_while_waiting(client):
    notes = []

    async def on_progress(progress, total, message):
        notes.append((progress, total, message))

    result = await call(
        client,
        "run_job",
        {"image": "busybox:latest", "script": "sleep 3; echo done"},
        progress=on_progress,
    )
    expect(result.structured_content["phase"] == "Succeeded", "a 3s job succeeds", result)
    expect(notes, "run_job sent no progress while waiting 3s")
    expect(all(n[2] and "run 1" in n[2] for n in notes), f"progress messages: {notes}")
    expect([n[0] for n in notes] == sorted(n[0] for n in notes), f"progress must increase: {notes}")
    log(f"{len(notes)} progress notifications, last: {notes[-1][2]}")


async def quick_job_without_waiting(client):
    result = await call(client, "run_job", {"image": "busybox:latest", "script": "echo quick", "wait": False})
    name = result.structured_content["job"]
    expect("get_resource" in text_of(result), "run_job wait=false: say how to follow up", result)
    deadline = time.monotonic() + 60
    while True:
        result = await call(client, "get_resource", {"kind": "job", "name": name})
        if result.structured_content.get("status", {}).get("phase") == "Succeeded":
            break
        expect(time.monotonic() < deadline, f"{name} never succeeded", result)
        await asyncio.sleep(0.3)
    expect(text_of(result).startswith(f"job default/{name}: Succeeded"), "get_resource: the headline", result)


async def long_job_containers_and_cancel(client):
    name = f"sleepy-{uuid.uuid4().hex[:6]}"
    # The wait ends long before the job: the answer says how to follow up.
    result = await call(
        client,
        "run_job",
        {"image": "busybox:latest", "name": name, "commands": ["echo start; sleep 300"], "max_wait_seconds": 1},
    )
    expect(result.structured_content["finished"] is False, "run_job: a wait that ends first", result)
    expect("cancel_job" in text_of(result), "a wait that ends first says how to follow up", result)
    deadline = time.monotonic() + 60
    while True:
        result = await call(client, "list_containers", {})
        mine = [c for c in result.structured_content["items"] if c["owner"]["name"] == name]
        if mine and mine[0]["state"] == "running":
            break
        expect(time.monotonic() < deadline, f"list_containers: {name} never showed as running", result)
        await asyncio.sleep(0.3)
    owner = mine[0]["owner"]
    expect(owner["kind"] == "Job" and owner["workspace"] == "default" and owner["run"] == 1, "owner", result)
    expect(f"job default/{name}" in text_of(result), "list_containers: the text does not name the job", result)
    log(f"list_containers shows {name} running")
    result = await call(client, "get_logs", {"job": name})
    expect(result.structured_content["inProgress"] is True, "get_logs of a running job: in progress", result)
    result = await call(client, "cancel_job", {"name": name})
    expect(result.structured_content["phase"] == "Cancelled", "cancel_job: not Cancelled", result)
    result = await call(client, "cancel_job", {"name": name}, error=True)
    expect("no run in progress" in text_of(result), "cancel twice: say why", result)
    await call(client, "delete_resource", {"kind": "job", "name": name})
    result = await call(client, "delete_resource", {"kind": "job", "name": name}, error=True)
    expect("not found" in text_of(result), "delete twice: not found", result)


async def scenario(client, which):
    log(f"connected: {client.server_info.name} {client.server_info.version}, protocol {client.protocol_version}")
    await list_tools(client)
    job = await run_hello(client)
    await logs(client, job)
    if which == "full":
        await bad_arguments(client)
        await apply_typo(client)
        await inspect(client, job)
        await search_past_failures(client)
        await quick_job_without_waiting(client)
        await progress_while_waiting(client)
        await long_job_containers_and_cancel(client)


def main():
    argv = sys.argv[1:]
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    options = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--http", metavar="URL", help="streamable HTTP endpoint; else the command after --")
    parser.add_argument("--scenario", choices=["full", "basic"], default="full")
    parser.add_argument("--mode", choices=["auto", "legacy"], default="auto")
    args = parser.parse_args(options)
    if bool(args.http) == bool(command):
        parser.error("give either --http URL or -- COMMAND [ARG...]")
    # The server inherits this environment (RUST_LOG, DOCKER_HOST), not the SDK's minimal one.
    server = server_of(args.http, command)

    async def session():
        async with Client(server, mode=args.mode, read_timeout_seconds=180) as client:
            await scenario(client, args.scenario)

    asyncio.run(session())
    log("all checks passed")


if __name__ == "__main__":
    main()

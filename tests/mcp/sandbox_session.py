"""An agent's session with a sandbox, through the official MCP Python SDK.

Run by tests/mcp.rs: applies a SandboxTemplate of busybox, creates a sandbox from it,
writes a file, runs a command that reads it, reads a file back, lists sandboxes,
stops, starts and deletes it, and checks that mistakes come back as tool errors that
say what to do. Prints one line per step to stderr; exits non-zero on the first
failure.

    sandbox_session.py --http URL
    sandbox_session.py -- BIN [ARG...]
"""

import argparse
import asyncio
import base64
import json
import os
import sys
import time
import uuid

from mcp import Client, StdioServerParameters
from session_checks import expect, log, server_of, text_of

TEMPLATE = """apiVersion: orcaops.dev/v1alpha1
kind: SandboxTemplate
metadata:
  name: busybox-shell
spec:
  idleTimeoutSeconds: 600
  services:
    - name: shell
      image: busybox:latest
      command: ["sh", "-c", "echo shell service up; exec sleep infinity"]
"""

SANDBOX_TOOLS = {
    "create_sandbox",
    "exec_in_sandbox",
    "write_file",
    "read_file",
    "sandbox_logs",
    "list_sandboxes",
    "stop_sandbox",
    "start_sandbox",
    "delete_sandbox",
}


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
    expect(SANDBOX_TOOLS <= set(tools), f"missing tools: {sorted(SANDBOX_TOOLS - set(tools))}")
    for name in SANDBOX_TOOLS:
        expect(tools[name].input_schema.get("type") == "object", f"{name}: schema is not an object")

    result = await call(client, "create_sandbox", {"template": "no-such-template"}, error=True)
    expect("apply_resource" in text_of(result) or "templates are" in text_of(result),
           "an unknown template says what to do", result)

    result = await call(client, "apply_resource", {"yaml": TEMPLATE})
    expect("busybox-shell" in text_of(result), "the template is applied", result)

    name = f"agent-{uuid.uuid4().hex[:6]}"
    result = await call(client, "create_sandbox", {"template": "busybox-shell", "name": name})
    data = result.structured_content
    expect(data["phase"] == "Ready" and data["sandbox"] == name, "create_sandbox waits until Ready", result)
    expect(data["services"] and data["services"][0]["name"] == "shell", "services are listed", result)
    expect(data.get("expiresAt"), "the idle deadline is reported", result)
    expect("exec_in_sandbox" in text_of(result), "the answer says what to do next", result)
    log(text_of(result).splitlines()[0])

    note = f"written by an agent {uuid.uuid4().hex}\n"
    result = await call(client, "write_file", {"sandbox": name, "path": "/work/notes/hello.txt", "content": note})
    expect(result.structured_content["bytes"] == len(note.encode()), "write_file size", result)

    result = await call(client, "exec_in_sandbox",
                        {"sandbox": name, "command": "cat /work/notes/hello.txt; wc -c < /work/notes/hello.txt; exit 3"})
    data = result.structured_content
    expect(data["exitCode"] == 3, "exec passes the exit code", result)
    expect(data["stdout"] == note + f"{len(note.encode())}\n", "exec read the file", result)
    expect("exit code 3" in text_of(result) and note.strip() in text_of(result), "the text shows it", result)

    result = await call(client, "exec_in_sandbox",
                        {"sandbox": name, "command": ["sh", "-c", "read line; echo got:$line"], "stdin": "ping\n"})
    expect(result.structured_content["stdout"] == "got:ping\n", "stdin reaches the command", result)

    result = await call(client, "exec_in_sandbox",
                        {"sandbox": name, "command": "seq 1 100000"})
    data = result.structured_content
    expect(data["stdoutCutBytes"] > 0, "long output is cut", result)
    expect(data["stdout"].startswith("1\n2\n") and data["stdout"].endswith("100000\n"), "both ends kept", result)
    expect("cut" in text_of(result), "the text says what was cut", result)

    blob = bytes(range(256))
    await call(client, "write_file", {"sandbox": name, "path": "/work/blob.bin",
                                      "content": base64.b64encode(blob).decode(), "encoding": "base64"})
    result = await call(client, "read_file", {"sandbox": name, "path": "/work/blob.bin"})
    data = result.structured_content
    expect(data["encoding"] == "base64" and base64.b64decode(data["content"]) == blob, "binary read back", result)
    result = await call(client, "read_file", {"sandbox": name, "path": "/work/notes/hello.txt", "max_bytes": 10})
    data = result.structured_content
    expect(data["truncated"] and data["content"] == note[:10], "max_bytes cuts", result)
    result = await call(client, "read_file", {"sandbox": name, "path": "/work/notes"}, error=True)
    expect("directory" in text_of(result) and "ls" in text_of(result), "a directory says how to list it", result)

    result = await call(client, "sandbox_logs", {"sandbox": name})
    data = result.structured_content
    expect(data["output"] == "shell service up\n" and not data["truncated"], "sandbox_logs reads the service's output", result)
    expect("shell service up" in text_of(result), "the text shows it", result)
    result = await call(client, "sandbox_logs", {"sandbox": name, "service": "web"}, error=True)
    expect("shell" in text_of(result), "an unknown service names the services", result)

    result = await call(client, "list_sandboxes", {})
    expect(name in text_of(result) and "busybox-shell" in text_of(result), "list_sandboxes shows it", result)
    row = next(i for i in result.structured_content["items"] if i["sandbox"] == name)
    expect(row["phase"] == "Ready", "listed as Ready", result)

    result = await call(client, "exec_in_sandbox", {"sandbox": "no-such-box", "command": "true"}, error=True)
    expect("list_sandboxes" in text_of(result), "an unknown sandbox says how to list them", result)

    result = await call(client, "stop_sandbox", {"sandbox": name})
    expect("start_sandbox" in text_of(result), "stop says how to start again", result)
    result = await call(client, "exec_in_sandbox", {"sandbox": name, "command": "true"}, error=True)
    expect("start_sandbox" in text_of(result), "exec in a stopped sandbox says to start it", result)
    deadline = time.monotonic() + 60
    while True:
        result = await call(client, "list_sandboxes", {})
        row = next(i for i in result.structured_content["items"] if i["sandbox"] == name)
        if row["phase"] == "Stopped":
            break
        expect(time.monotonic() < deadline, f"{name} never stopped", result)
        await asyncio.sleep(0.5)
    result = await call(client, "start_sandbox", {"sandbox": name})
    expect(result.structured_content["phase"] == "Ready", "start_sandbox waits until Ready", result)
    result = await call(client, "exec_in_sandbox", {"sandbox": name, "command": "cat /work/notes/hello.txt"})
    expect(result.structured_content["stdout"] == note, "files survive a stop and a start", result)

    result = await call(client, "delete_sandbox", {"sandbox": name})
    expect("deleted" in text_of(result), "delete_sandbox", result)
    result = await call(client, "delete_sandbox", {"sandbox": name}, error=True)
    expect("not found" in text_of(result), "delete twice: not found", result)


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

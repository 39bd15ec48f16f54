"""MCP over streamable HTTP with and without an API key, with the official Python SDK.

    auth_session.py --http URL

Without ORCAOPS_MCP_TOKEN the connection is refused (401). With a viewer's key
(ORCAOPS_MCP_TOKEN), reading tools work in the key's workspace, and a tool that writes
answers a tool error that names the refusal: the tools act with the caller's key.
"""

import argparse
import asyncio
import os

import httpx2

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from session_checks import expect, log, server_of, text_of


async def without_a_key(url):
    try:
        async with Client(streamable_http_client(url, http_client=create_mcp_http_client()), read_timeout_seconds=30) as client:
            await client.list_tools()
    except Exception as e:  # the SDK reports the HTTP error as a generic MCPError
        log(f"without a key: the SDK's session failed ({type(e).__name__})")
    else:
        raise AssertionError("an MCP session without a key was accepted")
    # What the server answered the SDK's first request: a 401 Status.
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    async with httpx2.AsyncClient() as http:
        answer = await http.post(url, json=initialize, headers={"Accept": "application/json, text/event-stream"})
    expect(answer.status_code == 401, f"without a key /mcp answered {answer.status_code}: {answer.text[:300]}")
    expect(answer.json().get("reason") == "Unauthorized", f"not an Unauthorized Status: {answer.text[:300]}")
    log("without a key: /mcp answers 401 Unauthorized")


async def as_a_viewer(url, workspace):
    async with Client(server_of(url, None), read_timeout_seconds=60) as client:
        tools = (await client.list_tools()).tools
        expect(any(t.name == "run_job" for t in tools), "the viewer sees the tools")
        result = await client.call_tool("list_resources", {"kind": "job", "workspace": workspace})
        expect(not result.is_error, "a viewer lists jobs in its workspace", result)
        result = await client.call_tool("run_job", {"image": "busybox:latest", "commands": ["echo hi"], "workspace": workspace})
        expect(result.is_error, "a viewer may not run a job", result)
        text = text_of(result)
        expect("may not patch" in text and workspace in text, "the refusal names the verb (run_job applies its Job) and the workspace", result)
        result = await client.call_tool("list_resources", {"kind": "job", "workspace": "default"})
        expect(result.is_error and "may not list" in text_of(result), "another workspace is refused", result)
        log("with a viewer's key: reads allowed, writes and other workspaces refused")


def main():
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--http", metavar="URL", required=True)
    parser.add_argument("--workspace", required=True)
    args = parser.parse_args()
    token = os.environ.pop("ORCAOPS_MCP_TOKEN", None)
    expect(token, "ORCAOPS_MCP_TOKEN must hold a viewer's key")
    asyncio.run(without_a_key(args.http))
    os.environ["ORCAOPS_MCP_TOKEN"] = token
    asyncio.run(as_a_viewer(args.http, args.workspace))
    log("all checks passed")


if __name__ == "__main__":
    main()

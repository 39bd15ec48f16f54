"""What both MCP session scripts use to report and check: a log line, a tool result's
text, and an assertion that shows the result it was about."""

import os
import sys

from mcp import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def server_of(http_url, command):
    """The server to connect to: streamable HTTP at `http_url`, sending the key in
    ORCAOPS_MCP_TOKEN as a bearer token (as any MCP client sends an API key), or the
    stdio `command`, which finds its key itself."""
    if http_url:
        token = os.environ.get("ORCAOPS_MCP_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return streamable_http_client(http_url, http_client=create_mcp_http_client(headers=headers))
    return StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))


def log(message):
    print(f"[agent] {message}", file=sys.stderr, flush=True)


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def expect(condition, message, result=None):
    if not condition:
        detail = ""
        if result is not None:
            detail = f"\n--- is_error={result.is_error} text:\n{text_of(result)}\n--- structured: {result.structured_content}"
        raise AssertionError(message + detail)

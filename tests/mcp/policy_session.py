"""An agent's session under Policies, through the official MCP Python SDK.

Run by tests/mcp.rs against a server where two Policies cover the workspace: an Enforce
one that denies images matching *miner*, and a Warn one that denies *:latest. The agent
applies a Job on a denied image (a tool error that names the policy, the rule and the
field, and nothing is created), runs a command on busybox:latest (it runs, and the
result carries the Warn policy's finding for the model to read), and reads the
Policies' reports back with get_resource. Exits non-zero on the first failure.

    policy_session.py --http URL --namespace NS
"""

import argparse
import asyncio

from mcp import Client
from session_checks import expect, log, server_of, text_of


def job_yaml(name, namespace, image):
    return f"""apiVersion: orcaops.dev/v1alpha1
kind: Job
metadata:
  name: {name}
  namespace: {namespace}
spec:
  image: {image}
  steps: [{{name: s, run: 'echo hi'}}]
"""


async def scenario(client, namespace):
    result = await client.call_tool("apply_resource", {"yaml": job_yaml("miner", namespace, "evil/miner:1")})
    log(f"apply_resource(miner) -> is_error={result.is_error}")
    text = text_of(result)
    expect(result.is_error, "a denied image is a tool error", result)
    expect("refused by policy" in text and "images.deny" in text and "spec.image" in text,
           "the refusal names the policy's rule and the field", result)

    result = await client.call_tool(
        "get_resource", {"kind": "job", "name": "miner", "workspace": namespace})
    expect(result.is_error and "not found" in text_of(result).lower(), "nothing was created", result)

    result = await client.call_tool(
        "run_job", {"commands": ["echo warned"], "image": "busybox:latest", "workspace": namespace,
                    "name": "latest"})
    log(f"run_job(busybox:latest) -> is_error={result.is_error}")
    text = text_of(result)
    expect(not result.is_error, "a Warn policy lets the run through", result)
    expect("Warnings from the workspace's policies" in text and "rule images.deny" in text,
           "the result carries the Warn policy's finding", result)

    result = await client.call_tool("get_resource", {"kind": "policy", "name": "mcp-no-miners"})
    expect(not result.is_error, "the policy reads back", result)


def main():
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--http", metavar="URL", required=True)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args()
    server = server_of(args.http, [])

    async def session():
        async with Client(server, read_timeout_seconds=180) as client:
            await scenario(client, args.namespace)

    asyncio.run(session())
    log("all checks passed")


if __name__ == "__main__":
    main()

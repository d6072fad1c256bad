"""The official MCP Python SDK's default client (`mcp.Client`, which
negotiates the newest protocol, 2026-07-28, through `server/discover`), or
its `legacy` handshake: list the tools and call one, as an agent built on the
SDK does without configuring anything. Prints one JSON line per step for the
Rust test (tests/tests/mcp.rs); an exception (a result the SDK refuses to
validate) ends the script with a traceback.

Usage: mcp_default_client.py BASE_URL TOKEN MODE [TOOL ARGUMENTS_JSON]
(MODE: auto or legacy; the tool called is echo.check unless named.) The call
asks for progress, as a client with a progress display does; the reports
received are in the `called` step.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


async def main(base, token, mode, tool="echo.check", arguments='{"ok": true, "message": "hello"}'):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    transport = streamable_http_client(f"{base}/mcp", http_client=http)
    async with Client(transport, mode=mode, raise_exceptions=True) as client:
        tools = await client.list_tools()
        say("tools", names=sorted(t.name for t in tools.tools))
        # The SDK checks a result's structured content against the tool's
        # output schema, and refuses one that does not fit.
        progress = []

        async def on_progress(done, total, message):
            progress.append({"progress": done, "total": total, "message": message})

        called = await client.call_tool(tool, json.loads(arguments), progress_callback=on_progress)
        say(
            "called",
            progress=progress,
            is_error=called.is_error,
            text=[c.text for c in called.content if c.type == "text"],
            structured=called.structured_content,
        )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))

"""The official MCP Python SDK's default client (protocol 2026-07-28, which
has no sessions) listening for tool-list changes with `subscriptions/listen`
(`Client.listen`), as an agent that wants to hear of a hot-load does. One
JSON line per step for the Rust test (tests/tests/mcp_listen.rs):
"listening" (with what the server honoured), then "changed" with the tool
names listed after the first change.

Usage: mcp_listen_client.py BASE_URL TOKEN
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


async def main(base, token):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    transport = streamable_http_client(f"{base}/mcp", http_client=http)
    async with Client(transport, raise_exceptions=True) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            honored = subscription.honored.model_dump(by_alias=True, exclude_none=True)
            say("listening", honored=honored)
            async for event in subscription:
                tools = await client.list_tools()
                say("changed", event=type(event).__name__, names=sorted(t.name for t in tools.tools))
                return


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

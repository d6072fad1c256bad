"""Drive toolhost's /mcp with the official MCP Python SDK (the `mcp` package),
as an existing agent client would. Prints one JSON line per step; the Rust
test (tests/tests/mcp.rs) reads them and answers by changing the server.

Usage: mcp_client.py BASE_URL TOKEN
"""

import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


async def main(base, token):
    changed = asyncio.Event()

    async def on_message(message):
        method = getattr(getattr(message, "root", message), "method", None)
        if method == "notifications/tools/list_changed":
            changed.set()

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(f"{base}/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write, message_handler=on_message) as session:
                init = await session.initialize()
                say("initialized", server=init.server_info.name, list_changed=bool(init.capabilities.tools.list_changed))

                tools = await session.list_tools()
                listed = {t.name: t for t in tools.tools}
                say("tools", names=sorted(listed), check_schema=listed["echo.check"].input_schema)

                ok = await session.call_tool("echo.check", {"ok": True, "message": "hello"})
                say("call_ok", is_error=ok.is_error, text=ok.content[0].text)

                failed = await session.call_tool("echo.check", {"ok": False, "message": "nope"})
                say("call_error", is_error=failed.is_error, text=failed.content[0].text)

                invalid = await session.call_tool("echo.check", {"ok": "yes", "message": 1})
                say("call_invalid", is_error=invalid.is_error, text=invalid.content[0].text)

                say("waiting_for_change")
                await asyncio.wait_for(changed.wait(), timeout=20)
                tools = await session.list_tools()
                say("changed", names=sorted(t.name for t in tools.tools))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

"""Follow calls held for a human's approval through toolhost's /mcp with the
official MCP Python SDK (the `mcp` package), as an unmodified agent client
would: the held call answers with an error naming the approval, and the
agent waits with the tool `toolhost.await-approval`. Prints one JSON line
per step; the Rust test (tests/tests/approvals_notify.rs) reads them and
decides each held call over the REST API while the client waits.

Usage: mcp_approval.py BASE_URL TOKEN EFFECT_URL ROUNDS [MODE]

MODE `session` (the default) opens a session with `ClientSession` and the
`initialize` handshake; `auto` is the SDK's default `Client`, which
negotiates the newest protocol (2026-07-28, no session).

Each of the ROUNDS rounds makes one POST to EFFECT_URL through
`netprobe.fetch` (held by the server's rules) and waits for its decision.
"""

import asyncio
import json
import sys
import time

import httpx2
from contextlib import asynccontextmanager

from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client

AWAIT = "toolhost.await-approval"


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def text_of(result):
    return result.content[0].text if result.content else None


def parsed(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


@asynccontextmanager
async def connected(base, http, mode):
    """An object with `list_tools` and `call_tool`, and the server's name."""
    transport = streamable_http_client(f"{base}/mcp", http_client=http)
    if mode == "auto":
        async with Client(transport, mode="auto", raise_exceptions=True) as client:
            yield client, client.server_info.name
        return
    async with transport as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            yield session, init.server_info.name


async def main(base, token, effect_url, rounds, mode="session"):
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with connected(base, http, mode) as (session, server):
            say("initialized", server=server)

            tools = await session.list_tools()
            say("tools", names=sorted(t.name for t in tools.tools))

            for n in range(rounds):
                held = await session.call_tool(
                    "netprobe.fetch",
                    {"method": "POST", "url": effect_url, "host-header": None},
                )
                text = text_of(held)
                body = parsed(text)
                say("held", round=n, is_error=held.is_error, text=text, body=body)
                approval = (body or {}).get("approval") or {}
                approval_id = approval.get("id") if isinstance(approval, dict) else None
                if not approval_id:
                    return

                say("awaiting", round=n, approval=approval_id)
                started = time.monotonic()
                result = await session.call_tool(AWAIT, {"approval": approval_id, "wait_secs": 30})
                waited = time.monotonic() - started
                text = text_of(result)
                say(
                    "result",
                    round=n,
                    is_error=result.is_error,
                    text=text,
                    body=parsed(text),
                    waited_secs=waited,
                )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), *sys.argv[5:]))

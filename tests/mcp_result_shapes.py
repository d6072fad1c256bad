"""Every kind of result toolhost answers a protocol 2026-07-28 client with,
checked against that revision's schema as the official Python SDK ships it
(`mcp_types._v2026_07_28`, models generated from the revision's JSON
schema: `resultType` is required there, as are the caching fields of a
list). The requests go out raw (no SDK client in between, which would fill
in what the server left out), one JSON line per result kind for the Rust
test (tests/tests/mcp_listen.rs):
{"kind": ..., "valid": true} or {"kind": ..., "valid": false, "error": ...}.

Usage: mcp_result_shapes.py BASE_URL TOKEN HELD_TOOL
"""

import asyncio
import json
import sys

import httpx2
from mcp_types import _v2026_07_28 as schema

VERSION = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": VERSION,
    "io.modelcontextprotocol/clientInfo": {"name": "result-shapes", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def messages(response):
    """The JSON-RPC messages of an answer, whether one JSON body or an event stream."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()]
    found = []
    for line in response.text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            found.append(json.loads(line[5:]))
    return found


async def request(http, url, id, method, params):
    body = {"jsonrpc": "2.0", "id": id, "method": method, "params": {**params, "_meta": META}}
    headers = {"MCP-Protocol-Version": VERSION, "Mcp-Method": method}
    if "name" in params:
        headers["Mcp-Name"] = params["name"]
    response = await http.post(url, json=body, headers=headers)
    answers = [m for m in messages(response) if m.get("id") == id]
    if not answers:
        raise RuntimeError(f"{method}: no answer ({response.status_code}): {response.text[:500]}")
    if "error" in answers[0]:
        raise RuntimeError(f"{method}: error {answers[0]['error']}")
    return answers[0]["result"], [m for m in messages(response) if "method" in m]


def check(kind, model, result):
    try:
        model.model_validate(result, by_alias=True)
        print(json.dumps({"kind": kind, "valid": True, "result": result}), flush=True)
    except Exception as e:  # the model's complaint is the finding
        print(json.dumps({"kind": kind, "valid": False, "error": str(e), "result": result}), flush=True)


async def main(base, token, held_tool):
    url = f"{base}/mcp"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        result, _ = await request(http, url, 1, "server/discover", {})
        check("server/discover", schema.DiscoverResult, result)
        result, _ = await request(http, url, 2, "tools/list", {})
        check("tools/list", schema.ListToolsResult, result)
        call = {"name": "echo.check", "arguments": {"ok": True, "message": "hi"}}
        result, _ = await request(http, url, 3, "tools/call", call)
        check("tools/call", schema.CallToolResult, result)
        call = {"name": "echo.check", "arguments": {"ok": False, "message": "no"}}
        result, _ = await request(http, url, 4, "tools/call", call)
        check("tools/call isError", schema.CallToolResult, result)
        call = {"name": held_tool, "arguments": {}}
        result, _ = await request(http, url, 5, "tools/call", call)
        check("tools/call held", schema.CallToolResult, result)
        call = {"name": "toolhost.await-approval", "arguments": {"approval": "no-such-approval"}}
        result, _ = await request(http, url, 6, "tools/call", call)
        check("tools/call await", schema.CallToolResult, result)
        # The host ends a listen stream after its idle time (short in the
        # test) with the final result the revision defines.
        listen = {"notifications": {"toolsListChanged": True}}
        result, notes = await request(http, url, 7, "subscriptions/listen", listen)
        check("subscriptions/listen", schema.SubscriptionsListenResult, result)
        for note in notes:
            if note["method"] == "notifications/subscriptions/acknowledged":
                check("notifications/subscriptions/acknowledged",
                      schema.SubscriptionsAcknowledgedNotification, note)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))

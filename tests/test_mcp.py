"""The app as an MCP server (DS_MCP_SERVER=1): each generation tab is a tool an agent can list and call."""

import asyncio

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import TINY_MODEL

GENERATION_TOOLS = {"generate_unconditional", "generate_ddim", "generate_digits", "generate_colour_guidance",
                    "generate_clip_guidance", "generate_text2img", "generate_inpaint"}


async def list_and_call(url: str):
    async with streamable_http_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            result = await session.call_tool("generate_unconditional", {
                "model_name": TINY_MODEL, "count": 1, "step_count": 2, "seed_value": 3, "use_random_seed": False,
            })
            return tools, result


def test_schema_lists_the_generation_tools_with_descriptions(server_url):
    schema = httpx.get(f"{server_url}gradio_api/mcp/schema", timeout=30).json()
    described = {tool["name"]: tool["description"] for tool in schema}
    assert GENERATION_TOOLS <= set(described)
    assert all(described[name] for name in GENERATION_TOOLS)


def test_an_agent_lists_tools_and_generates(server_url):
    tools, result = asyncio.run(list_and_call(f"{server_url}gradio_api/mcp/"))
    by_name = {tool.name: tool for tool in tools}
    assert GENERATION_TOOLS <= set(by_name)
    assert {"model_name", "step_count", "seed_value"} <= set(by_name["generate_unconditional"].inputSchema["properties"])
    assert not result.isError
    text = " ".join(item.text for item in result.content if item.type == "text")
    assert "Seed 3" in text

"""The MCP server, driven by a real MCP client session (the ``mcp`` package) over stdio: every tool is called."""

import os
import sys

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from rag.mathnorm import formula_in

MATHRAG = os.path.join(os.path.dirname(sys.executable), "mathrag")


async def test_every_tool_answers_from_the_notes():
    params = StdioServerParameters(command=MATHRAG, args=["mcp"], env=dict(os.environ))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {"search_notes", "ask", "learning_path", "read_note"}
        assert all(t.description and t.inputSchema["properties"] for t in tools.values())

        found = await session.call_tool("search_notes", {"query": "singular value decomposition", "k": 3})
        hits = found.structuredContent["hits"]
        assert not found.isError and len(hits) == 3
        assert hits[0]["source"] == "corpus/linear_algebra/svd.md" and hits[0]["text"] and hits[0]["heading"]

        replied = await session.call_tool("ask", {"question": "What is the derivative of the sigmoid function?"})
        reply = replied.structuredContent
        assert reply["answered"] and reply["citations"] and "supported" in reply["support"]
        assert formula_in(r"\sigma(x)(1-\sigma(x))", reply["answer"]), reply["answer"]
        assert any(c["source"].endswith("activation_functions.md") for c in reply["citations"])

        path = (await session.call_tool("learning_path", {"concept": "LoRA"})).structuredContent
        sources = [s["source"] for s in path["steps"]]
        assert sources[-1] == "corpus/transformers_genai/lora.md" and len(sources) > 3

        section = await session.call_tool("read_note", {"source": "chain_rule", "section": "Worked example"})
        text = section.content[0].text
        assert text.startswith("## Worked example") and "## How it is used" not in text

        for tool, arguments, says in (("read_note", {"source": "nope"}, "no note 'nope'"),
                                      ("search_notes", {"query": "x", "mode": "weird"}, "unknown mode 'weird'"),
                                      ("learning_path", {"concept": "zzzz qqqq"}, "zzzz")):
            failed = await session.call_tool(tool, arguments)
            assert failed.isError and says in failed.content[0].text, failed.content[0].text


@pytest.fixture(autouse=True)
def _built_index(engine):
    """The session's engine has built the index and the graph the server reads (and tests it must not rebuild)."""

import json

from promptflow.core import tool


@tool
def reply(question: str, chat_history: list) -> str:
    return "echo: " + question + " | history=" + json.dumps(chat_history)

import json

from promptflow.core import tool


@tool
def reply(chat_input: str, chat_history: list) -> str:
    return "echo: " + chat_input + " | history=" + json.dumps(chat_history)

from promptflow.core import tool


@tool
def reply(topic: str) -> str:
    return "about " + topic

from promptflow.core import tool


@tool
def reply(question: str) -> str:
    return "about " + question

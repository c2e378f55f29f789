"""The LLM side: one chat-completions connection and everything it needs.

Takes: a model's settings (model, endpoint, key or token manager).
Gives: `models.OpenAIChatCompletionsModel` (the `openai` SDK over `transport`), `retries` (a
completion's retries; a 429 waited out with the endpoint's limiter, never counted), `replies` (the
answer read), `failures` (each failure a `TurnError` naming what to change), `errors` (what a
server's failure says and whether to retry), `response_formats` (how much structured output an
endpoint takes, learnt from its answers), `thinking` (a reasoning model's thoughts kept apart)
and `token_managers` (where the credential comes from).
Used by: `targets.model`, `checks.judge`, `conversation.users`, `run.connections`.
"""

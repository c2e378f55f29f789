"""The turn loop end to end: both sides over real HTTP on 127.0.0.1, or callbacks."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time

import jsonschema
import pytest

from simulator import (
    STOP_REASONS,
    ConfigError,
    OpenAIChatCompletionsModel,
    Persona,
    PlainTokenManager,
    ScriptedUser,
    Simulator,
    validate_result,
)
from tests.servers.openai_server import FakeOpenAIServer, Reply

TASK = "Return the TrailMaster X4 tent and get a refund"
SECRET = "sk-never-in-results"


def model_for(server: FakeOpenAIServer, **kwargs) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(
        endpoint_url=server.openai_base_url, token_manager=PlainTokenManager(SECRET), name="gpt-test", **kwargs
    )


def test_two_models_reference_flow_and_output_shape(llm: FakeOpenAIServer, llm_app: FakeOpenAIServer) -> None:
    llm.script("Hi! I want to return my tent.", "It's order 5.", "Great, thanks so much! ###STOP###")
    llm_app.script("Sure, what's the order number?", "Done, refund issued for order 5.")
    jane = Persona.load("jane")
    simulator = Simulator(systemConnection=model_for(llm_app), userConnection=model_for(llm))
    result = simulator.simulate(persona=jane, task=TASK, max_conversation_turns=6)

    validate_result(result)
    assert set(result) >= {"conversation_id", "conversation", "meta_data"}
    assert result["conversation_id"]
    turns = result["conversation"]
    assert [t["turn_number"] for t in turns] == [0, 1, 2, 3, 4]
    assert [t["actor"] for t in turns] == ["user", "assistant", "user", "assistant", "user"]
    assert [t["response"] for t in turns] == [
        "Hi! I want to return my tent.",
        "Sure, what's the order number?",
        "It's order 5.",
        "Done, refund issued for order 5.",
        "Great, thanks so much!",
    ]
    for turn in turns:
        assert set(turn) >= {"turn_number", "response", "actor", "request", "full_json_response"}
        assert turn["full_json_response"]["object"] == "chat.completion"
        assert turn["request"]["messages"]
    assert turns[-1]["stop_signal"] == "done"
    meta = result["meta_data"]
    assert meta["persona"]["name"] == "Jane" and meta["task"] == TASK
    assert meta["stop_reason"] == "user_done" and not meta["is_error"]
    assert meta["turn_count"] == 5 and len(meta["latency_ms"]["per_turn"]) == 5
    user_tokens = sum(t["usage"]["total_tokens"] for t in turns if t["actor"] == "user")
    assert meta["usage"]["user"]["total_tokens"] == user_tokens > 0
    assert meta["usage"]["total"]["total_tokens"] == user_tokens + meta["usage"]["assistant"]["total_tokens"]
    assert SECRET not in json.dumps(result)


def test_user_llm_sees_persona_and_the_conversation_with_roles_swapped(
    llm: FakeOpenAIServer, llm_app: FakeOpenAIServer
) -> None:
    llm.script("I need a refund.", "Order 5. ###STOP###")
    llm_app.script("Which order?")
    jane = Persona.load("jane")
    Simulator(systemConnection=model_for(llm_app), userConnection=model_for(llm)).simulate(jane, TASK, 6)

    first, second = llm.chat_requests
    system = first.messages[0]
    assert system["role"] == "system"
    for part in ("Jane", "outdoor enthusiast", "happy", TASK, "555-987-6543", "###STOP###"):
        assert part in system["content"]
    assert [m["role"] for m in first.messages] == ["system", "user"]
    assert [(m["role"], m["content"]) for m in second.messages[2:]] == [
        ("assistant", "I need a refund."),
        ("user", "Which order?"),
    ]
    app_request = llm_app.chat_requests[0]
    assert app_request.messages == [{"role": "user", "content": "I need a refund."}]
    assert all("###" not in m["content"] for m in app_request.messages)


def test_max_turns_bounds_the_total(llm: FakeOpenAIServer, llm_app: FakeOpenAIServer) -> None:
    llm.default = lambda request: "Tell me more."
    simulator = Simulator(systemConnection=model_for(llm_app), userConnection=model_for(llm))
    for max_turns in (1, 4, 5):
        result = simulator.simulate(Persona.load("marcus"), "get my router", max_conversation_turns=max_turns)
        assert len(result["conversation"]) == max_turns
        assert result["meta_data"]["stop_reason"] == "max_turns"
        assert result["conversation"][-1]["actor"] == ("user" if max_turns % 2 else "assistant")


def test_user_gives_up_and_bye_alone_does_not_stop(llm: FakeOpenAIServer, llm_app: FakeOpenAIServer) -> None:
    llm.script("Hello, refund please", "ok bye", "This is useless. ###GIVE_UP###")
    simulator = Simulator(systemConnection=model_for(llm_app), userConnection=model_for(llm))
    result = simulator.simulate(Persona.load("marcus"), "refund", max_conversation_turns=10)
    assert result["meta_data"]["stop_reason"] == "user_gave_up"
    assert [t["response"] for t in result["conversation"] if t["actor"] == "user"] == [
        "Hello, refund please",
        "ok bye",
        "This is useless.",
    ]


def test_marker_alone_ends_without_an_empty_turn(llm: FakeOpenAIServer) -> None:
    llm.script("hi", "###STOP###")
    simulator = Simulator(simulate_callback=lambda q, h, m: "hello", userConnection=model_for(llm))
    result = simulator.simulate(Persona.load("jane"), TASK, 6)
    assert [t["response"] for t in result["conversation"]] == ["hi", "hello"]
    assert result["meta_data"]["stop_reason"] == "user_done"


def test_user_replies_speaking_as_assistant_or_empty_are_retried(llm: FakeOpenAIServer) -> None:
    llm.script("Assistant: How can I help you today?", "   ", "Jane: I'd like a refund. ###STOP###")
    simulator = Simulator(simulate_callback=lambda q, h, m: "ok", userConnection=model_for(llm))
    result = simulator.simulate(Persona.load("jane"), TASK, 6)
    turn = result["conversation"][0]
    assert turn["response"] == "I'd like a refund."
    assert len(turn["notes"]) == 2 and "assistant" in turn["notes"][0] and "empty" in turn["notes"][1]
    assert "not usable" in llm.chat_requests[1].messages[-1]["content"]
    assert turn["usage"]["completion_tokens"] == sum(
        len((c or "").split())
        for c in ("Assistant: How can I help you today?", "", "Jane: I'd like a refund. ###STOP###")
    )


def test_user_that_never_gives_a_usable_reply_is_an_llm_error(llm: FakeOpenAIServer) -> None:
    llm.script("hello there", "AI: Sure, I can help.", "AI: Sure.", "Assistant: ok")
    simulator = Simulator(simulate_callback=lambda q, h, m: "Welcome", userConnection=model_for(llm))
    result = simulator.simulate(Persona.load("jane"), TASK, 6)
    validate_result(result)
    meta = result["meta_data"]
    assert meta["stop_reason"] == "llm_error" and meta["is_error"]
    failed = result["conversation"][-1]
    assert failed["actor"] == "user" and failed["response"] == "" and failed["error"]["reason"] == "llm_error"
    assert failed["full_json_response"]["choices"][0]["message"]["content"] == "Assistant: ok"
    assert [t["response"] for t in result["conversation"][:2]] == ["hello there", "Welcome"]


def test_content_filter_on_the_user_side_and_on_the_app_side(llm: FakeOpenAIServer, llm_app: FakeOpenAIServer) -> None:
    llm.script(Reply.content_filter_prompt())
    simulator = Simulator(systemConnection=model_for(llm_app), userConnection=model_for(llm))
    result = simulator.simulate(Persona.load("alex"), "probe", 4)
    assert result["meta_data"]["stop_reason"] == "content_filter"
    assert result["meta_data"]["error"]["actor"] == "user"

    llm.script("tell me something bad")
    llm_app.script(Reply.content_filter_completion())
    result = simulator.simulate(Persona.load("alex"), "probe", 4)
    assert result["meta_data"]["stop_reason"] == "content_filter"
    assert result["meta_data"]["error"]["actor"] == "assistant"
    assert result["conversation"][0]["response"] == "tell me something bad"


def test_app_model_failing_is_an_app_error(llm: FakeOpenAIServer, llm_app: FakeOpenAIServer) -> None:
    llm.script("hi")
    llm_app.default = lambda request: Reply.error(500, "internal")
    simulator = Simulator(systemConnection=model_for(llm_app, max_retries=1), userConnection=model_for(llm))
    result = simulator.simulate(Persona.load("jane"), TASK, 4)
    assert result["meta_data"]["stop_reason"] == "app_error"
    assert "500" in result["meta_data"]["error"]["message"]
    assert len(llm_app.chat_requests) == 2


# --- callbacks ---------------------------------------------------------------------------


def test_async_callback_gets_question_history_and_meta_data() -> None:
    seen = []

    async def simulate_callback(question, conversation_history, meta_data):
        seen.append((question, list(conversation_history), dict(meta_data)))
        return {"answer": f"echo {question}", "context": {"docs": [1, 2]}}

    user = ScriptedUser(["one", "two"])
    result = Simulator(simulate_callback=simulate_callback, userConnection=user).simulate(
        Persona.load("jane"), TASK, 10, conversation_id="conv-1"
    )
    assert [t["response"] for t in result["conversation"]] == ["one", "echo one", "two", "echo two"]
    assert result["conversation_id"] == "conv-1"
    assert result["meta_data"]["stop_reason"] == "user_done"
    assert result["conversation"][1]["full_json_response"] == {"answer": "echo one", "context": {"docs": [1, 2]}}
    question, history, meta = seen[1]
    assert question == "two"
    assert history == [{"role": "user", "content": "one"}, {"role": "assistant", "content": "echo one"}]
    assert meta["conversation_id"] == "conv-1" and meta["persona"] == "Jane" and meta["task"] == TASK
    assert "customer_info" in meta["persona_meta_data"]


def test_sync_callbacks_run_off_the_event_loop() -> None:
    """Two conversations whose sync callback sleeps 0.3 s per turn overlap instead of queueing."""
    threads = set()

    def slow_app(question, conversation_history, meta_data):
        threads.add(threading.get_ident())
        time.sleep(0.3)
        return "slow answer"

    simulator = Simulator(simulate_callback=slow_app, userConnection=ScriptedUser(["a", "b"]))

    async def both():
        return await asyncio.gather(
            simulator.simulate_async(Persona.load("jane"), TASK, 4),
            simulator.simulate_async(Persona.load("walter"), TASK, 4),
        )

    started = time.monotonic()
    results = asyncio.run(both())
    elapsed = time.monotonic() - started
    assert all(r["meta_data"]["stop_reason"] == "max_turns" for r in results)
    assert elapsed < 0.3 * 4 * 0.8, elapsed  # 4 callback calls in all, serial would take 1.2 s
    assert threading.get_ident() not in threads


def test_callable_object_with_async_call() -> None:
    class App:
        async def __call__(self, question, conversation_history, meta_data):
            return "object answer"

    result = Simulator(simulate_callback=App(), userConnection=ScriptedUser(["q"])).simulate(
        Persona.load("jane"), TASK, 2
    )
    assert result["conversation"][1]["response"] == "object answer"


def _nested(depth: int) -> list:
    node: list = []
    for _ in range(depth):
        node = [node]
    return node


@pytest.mark.parametrize(
    ("callback", "reason", "message"),
    [
        (lambda q, h, m: 1 / 0, "app_error", "ZeroDivisionError"),
        (lambda q, h, m: {"text": "hi"}, "app_error", "no 'answer' key"),
        (lambda q, h, m: 42, "app_error", "returned int"),
        (lambda q, h, m: "   ", "app_error", "empty"),
        (lambda q, h, m: time.sleep(2) or "late", "timeout", "within 0.3 s"),
        # what no results line could hold, or no reader take back, is the app's error, not a broken file
        (lambda q, h, m: {"answer": "ok", "score": float("nan")}, "app_error", "NaN is not a JSON number"),
        (lambda q, h, m: {"answer": "ok", "deep": _nested(200)}, "app_error", "nested more than"),
    ],
)
def test_callback_failures_end_the_conversation_with_a_reason(callback, reason: str, message: str) -> None:
    simulator = Simulator(simulate_callback=callback, userConnection=ScriptedUser(["q1", "q2"]), turn_timeout=0.3)
    result = simulator.simulate(Persona.load("jane"), TASK, 6)
    validate_result(result)
    meta = result["meta_data"]
    assert meta["stop_reason"] == reason and meta["is_error"]
    assert message in meta["error"]["message"]
    assert [t["actor"] for t in result["conversation"]] == ["user", "assistant"]
    assert result["conversation"][0]["response"] == "q1"
    assert result["conversation"][1]["error"]["reason"] == reason
    json.dumps(result)


# --- constructor forms ---------------------------------------------------------------------


def test_reference_constructor_forms(llm: FakeOpenAIServer, llm_app: FakeOpenAIServer) -> None:
    async def simulate_callback(question, conversation_history, meta_data):
        return "from callback"

    gpt_bot_model = model_for(llm)
    llm.default = lambda request: "user says ###STOP###"
    # the reference's second example: the one model given plays the user
    sim = Simulator(systemConnection=gpt_bot_model, simulate_callback=simulate_callback)
    result = sim.simulate(persona=Persona.load("jane"), task=TASK, max_conversation_turns=6)
    assert [t["response"] for t in result["conversation"]] == ["user says"]

    llm.default = lambda request: "user says"
    sim = Simulator(simulate_callback=simulate_callback, userConnection=gpt_bot_model)
    assert sim.simulate(Persona.load("jane"), TASK, 2)["conversation"][1]["response"] == "from callback"
    sim = Simulator(system_connection=model_for(llm_app), user_connection=gpt_bot_model)
    assert sim.simulate(Persona.load("jane"), TASK, 2)["conversation"][1]["response"] == "ok"


def test_ambiguous_or_incomplete_constructors_are_clear_errors(llm: FakeOpenAIServer) -> None:
    model = model_for(llm)

    def callback(q, h, m):
        return "x"

    with pytest.raises(ConfigError, match="unclear what answers as the app"):
        Simulator(systemConnection=model, userConnection=model, simulate_callback=callback)
    with pytest.raises(ConfigError, match="nothing plays the app"):
        Simulator(userConnection=model)
    with pytest.raises(ConfigError, match="nothing plays the user"):
        Simulator(systemConnection=model)
    with pytest.raises(ConfigError, match="not both"):
        Simulator(systemConnection=model, system_connection=model, userConnection=model)
    with pytest.raises(ConfigError, match="callable"):
        Simulator(simulate_callback="not a function", userConnection=model)
    with pytest.raises(ConfigError, match="userConnection must be"):
        Simulator(simulate_callback=callback, userConnection=42)
    sim = Simulator(simulate_callback=callback, userConnection=ScriptedUser(["x"]))
    with pytest.raises(ConfigError, match="task"):
        sim.simulate(Persona.load("jane"), "", 4)
    with pytest.raises(ConfigError, match="max_conversation_turns"):
        sim.simulate(Persona.load("jane"), TASK, 0)


def test_sync_simulate_inside_a_running_event_loop() -> None:
    sim = Simulator(simulate_callback=lambda q, h, m: "a", userConnection=ScriptedUser(["q"]))

    async def notebook_cell():
        return sim.simulate("jane", TASK, 4)  # persona by name; works even though a loop is running

    result = asyncio.run(notebook_cell())
    assert result["meta_data"]["stop_reason"] == "user_done"


# --- scripted user and replay -----------------------------------------------------------------


def test_scripted_user_replays_a_previous_conversation(llm: FakeOpenAIServer) -> None:
    llm.script("first", "second", "bye ###STOP###")
    original = Simulator(simulate_callback=lambda q, h, m: "v1", userConnection=model_for(llm)).simulate(
        "jane", TASK, 10
    )
    replay = Simulator(
        simulate_callback=lambda q, h, m: f"v2: {q}", userConnection=ScriptedUser.from_result(original)
    ).simulate("jane", TASK, 10)
    assert [t["response"] for t in replay["conversation"] if t["actor"] == "user"] == ["first", "second", "bye"]
    assert replay["conversation"][1]["response"] == "v2: first"
    assert replay["meta_data"]["user"]["kind"] == "scripted"
    assert len(llm.chat_requests) == 3  # the replay made no LLM call


def test_scripted_user_validation() -> None:
    with pytest.raises(ConfigError):
        ScriptedUser("just a string")
    with pytest.raises(ConfigError):
        ScriptedUser(["ok", ""])
    with pytest.raises(ConfigError, match="no user turns"):
        ScriptedUser.from_result({"conversation": []})


def test_schema_rejects_results_missing_named_fields() -> None:
    result = Simulator(simulate_callback=lambda q, h, m: "a", userConnection=ScriptedUser(["q"])).simulate(
        "jane", TASK, 4
    )
    validate_result(result)
    assert result["meta_data"]["stop_reason"] in STOP_REASONS
    for field in ("turn_number", "response", "actor", "request", "full_json_response"):
        broken = json.loads(json.dumps(result))
        del broken["conversation"][0][field]
        with pytest.raises(jsonschema.ValidationError):
            validate_result(broken)
    broken = json.loads(json.dumps(result))
    del broken["meta_data"]["task"]
    with pytest.raises(jsonschema.ValidationError):
        validate_result(broken)


def test_a_short_reply_inside_a_huge_answer_keeps_the_reply_and_cuts_the_rest() -> None:
    def app(question, history, meta):
        return {"answer": "short and sweet", "debug": ["x" * 1000] * 1000}

    result = Simulator(simulate_callback=app, userConnection=ScriptedUser(["hi"])).simulate("jane", TASK, 2)
    turn = result["conversation"][1]
    assert turn["response"] == "short and sweet"
    assert len(json.dumps(turn["full_json_response"])) < 250_000
    assert turn["notes"] == ["the app's raw answer was cut to keep the result small"]
    validate_result(result)


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        ("thanks, that is all ###STOP###", "user_done"),
        ("###STOP###", "user_done"),  # a marker alone: no turn is recorded for it
        ("this is hopeless ###GIVE_UP###", "user_gave_up"),
    ],
)
def test_a_replay_ends_the_way_the_original_did(last: str, reason: str) -> None:
    """The replayed app gets exactly the original's user messages and no extra turn."""
    from simulator.targets import HttpTarget
    from tests.servers.chat_app import FakeChatApp

    script = ["hello", "order 5 please", last]
    with FakeChatApp() as app:
        target = HttpTarget(app.url + "/promptflow", format="promptflow")
        first = Simulator(systemConnection=target, userConnection=ScriptedUser(script)).simulate("jane", TASK, 20)
        sent_first = [r.user_text for r in app.requests]
        app.reset()
        again = Simulator(
            systemConnection=HttpTarget(app.url + "/promptflow", format="promptflow"),
            userConnection=ScriptedUser.from_result(first),
        ).simulate("jane", TASK, 20)
        sent_again = [r.user_text for r in app.requests]
    assert first["meta_data"]["stop_reason"] == again["meta_data"]["stop_reason"] == reason
    assert len(again["conversation"]) == len(first["conversation"])
    assert [t["response"] for t in again["conversation"] if t["actor"] == "user"] == [
        t["response"] for t in first["conversation"] if t["actor"] == "user"
    ]
    assert sent_again == sent_first  # the marked message is not sent, in the original or the replay


def test_a_callback_that_changes_its_arguments_changes_nothing_of_the_callers() -> None:
    """Apps append to the history they are given or edit meta_data in place; the persona (shared by
    every later conversation) and the recorded request (what the app was sent) must not follow."""
    persona = Persona(name="Ann", profile="buyer", meta_data={"order": 5, "items": ["tent"]})

    def app(question, conversation_history, meta_data):
        conversation_history.append({"role": "user", "content": question})
        conversation_history[0]["content"] = "EDITED"
        meta_data["persona_meta_data"]["order"] = 999
        meta_data["persona_meta_data"]["items"].append("stove")
        meta_data["task"] = "EDITED"
        return "noted"

    simulator = Simulator(simulate_callback=app, userConnection=ScriptedUser(["one", "two", "three"]))
    result = simulator.simulate(persona, TASK, 6)

    assert persona.meta_data == {"order": 5, "items": ["tent"]}
    assert result["meta_data"]["persona"]["meta_data"] == {"order": 5, "items": ["tent"]}
    sent = result["conversation"][3]["request"]
    assert sent["meta_data"]["task"] == TASK
    assert sent["meta_data"]["persona_meta_data"] == {"order": 5, "items": ["tent"]}
    assert sent["question"] == "two"
    assert sent["conversation_history"] == {"$turns": [0, 1]}


def test_simulate_inside_a_running_loop_names_the_fix_when_the_callback_needs_that_loop() -> None:
    """In a notebook or an async web app, simulate() runs the conversation on its own loop in a
    worker thread; an async callback using an object of the caller's loop cannot run there."""

    async def caller() -> tuple[dict, dict]:
        ready = asyncio.get_running_loop().create_future()  # bound to the caller's loop, like a client session

        async def app(question, conversation_history, meta_data):
            await asyncio.wait_for(ready, 1)
            return "ok"

        simulator = Simulator(simulate_callback=app, userConnection=ScriptedUser(["one"]))
        blocked = simulator.simulate(Persona.load("jane"), TASK, 4)
        ready.set_result(None)
        awaited = await simulator.simulate_async(Persona.load("jane"), TASK, 4)
        return blocked, awaited

    blocked, awaited = asyncio.run(caller())
    assert blocked["meta_data"]["stop_reason"] == "app_error"
    assert "different loop" in blocked["meta_data"]["error"]["message"]
    assert "await simulator.simulate_async(" in blocked["meta_data"]["error"]["message"]
    assert awaited["meta_data"]["stop_reason"] == "user_done"


def test_a_loop_error_from_simulate_async_gets_no_advice_about_simulate() -> None:
    async def app(question, conversation_history, meta_data):
        raise RuntimeError("got Future attached to a different loop")

    async def caller() -> dict:
        return await Simulator(simulate_callback=app, userConnection=ScriptedUser(["one"])).simulate_async(
            "jane", TASK, 4
        )

    message = asyncio.run(caller())["meta_data"]["error"]["message"]
    assert "different loop" in message and "await simulator.simulate_async(" not in message


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Python 3.10's Task replaces the exception a cancelled task raised"
)
def test_cancelling_simulate_async_hands_back_the_turns_so_far() -> None:
    from simulator import ConversationCancelled

    started = threading.Event()

    async def app(question, conversation_history, meta_data):
        started.set()
        await asyncio.sleep(30)
        return "too late"

    async def caller() -> ConversationCancelled:
        task = asyncio.create_task(
            Simulator(simulate_callback=app, userConnection=ScriptedUser(["one"])).simulate_async("jane", TASK, 4)
        )
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(ConversationCancelled) as raised:
            await task
        return raised.value

    cancelled = asyncio.run(caller())
    assert isinstance(cancelled, asyncio.CancelledError)
    partial = cancelled.partial_result
    validate_result(partial)
    assert partial["meta_data"]["stop_reason"] == "cancelled"
    assert [t["response"] for t in partial["conversation"]] == ["one"]


def test_a_partial_callback_is_named_after_its_function() -> None:
    import functools

    async def app(greeting, question, conversation_history, meta_data):
        return f"{greeting} {question}"

    result = Simulator(simulate_callback=functools.partial(app, "hi"), userConnection=ScriptedUser(["one"])).simulate(
        "jane", TASK, 4
    )
    assert result["conversation"][1]["response"] == "hi one"
    assert result["meta_data"]["app"]["callback"].endswith("app (partial)")
    assert result["meta_data"]["app"]["callback"].startswith("tests.test_simulator:")

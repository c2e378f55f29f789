"""Quickstart with no API key: Jane (scripted) returns her tent to the bundled store assistant.

    python -m simulator.examples.quickstart            # prints the conversation_result as JSON
    python -m simulator.examples.quickstart --out r.json

To let an LLM play Jane instead, replace the ScriptedUser with an OpenAIChatCompletionsModel.
"""

from __future__ import annotations

import argparse
import json
import sys

from simulator import Persona, ScriptedUser, Simulator, validate_result
from simulator.examples import store_app

JANE_SAYS = [
    "Hi! I'd like to return a tent I bought in May.",
    "It's order number 5.",
    "Yes please, go ahead with the refund.",
    "Perfect, thank you so much! ###STOP###",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="write the conversation_result here instead of standard output")
    args = parser.parse_args(argv)
    simulator = Simulator(simulate_callback=store_app.respond, userConnection=ScriptedUser(JANE_SAYS))
    result = simulator.simulate(
        persona=Persona.load("jane"), task="Return the TrailMaster X4 tent for a refund", max_conversation_turns=10
    )
    validate_result(result)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    else:
        print(text)
    for turn in result["conversation"]:
        print(f"{turn['actor']:>9}: {turn['response']}", file=sys.stderr)
    meta = result["meta_data"]
    print(f"ended: {meta['stop_reason']} after {meta['turn_count']} turns", file=sys.stderr)
    return 0 if not meta["is_error"] else 1


if __name__ == "__main__":
    sys.exit(main())

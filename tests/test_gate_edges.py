"""The gate at its edges: failures and errors together, flaky simulations with errors, rates near
their thresholds, merged shards that overlap, re-checks of narrowed runs."""

from __future__ import annotations

from pathlib import Path

from simulator.checks import decide_gate
from simulator.checks.gate import simulation_verdict
from simulator.exit_codes import EXIT_OK, EXIT_RUN_ERRORS, exit_code
from tests.servers.chat_app import AppReply, FakeChatApp
from tests.test_action import make_workspace, run_entrypoint


def fake_results(name: str, statuses: list[str], **meta) -> list[dict]:
    return [{"meta_data": {"simulation": name, **meta}, "evaluation": {"status": s, "failed": []}} for s in statuses]


# --- fail-on: errors ------------------------------------------------------------------------------


def test_too_many_errors_fail_on_errors_even_when_conversations_also_failed() -> None:
    sims = {
        "broken": simulation_verdict(fake_results("broken", ["error"] * 5)),
        "wrong": simulation_verdict(fake_results("wrong", ["fail"])),
    }
    gate = decide_gate(sims, {"max_error_rate": 0.1})
    assert gate["status"] == "fail"  # the app misbehaved: that is the verdict ...
    assert any("error rate" in reason for reason in gate["reasons"])
    summary = {"gate": gate, "run": {}}
    # ... but `fail-on: errors` is there to fail on too many errors, and there are
    assert exit_code(summary, fail_on="errors") == EXIT_RUN_ERRORS
    only_failures = {"gate": decide_gate({"wrong": sims["wrong"]}, None), "run": {}}
    assert exit_code(only_failures, fail_on="errors") == EXIT_OK


def test_missing_conversations_fail_on_errors_even_when_conversations_also_failed() -> None:
    sims = {"wrong": simulation_verdict(fake_results("wrong", ["fail", "pass"]))}
    gate = decide_gate(sims, {"max_error_rate": 0.5}, missing=1)
    assert gate["status"] == "fail"
    assert exit_code({"gate": gate, "run": {}}, fail_on="errors") == EXIT_RUN_ERRORS


def test_action_with_fail_on_errors_fails_the_job_when_the_app_errors_and_fails(tmp_path: Path) -> None:
    def reply(request) -> AppReply:
        return AppReply.error(400, "bad request") if "crash" in (request.user_text or "") else AppReply(text="no")

    manifest = (
        "version: 1\ntarget: {url: '${APP_URL}'}\n"
        "simulations:\n"
        "  - {name: crashes, persona: jane, task: t, turns: [crash], repeat: 3}\n"
        "  - {name: answers, persona: jane, task: t, turns: [hi], expect: {contains: sure}}\n"
    )
    with FakeChatApp() as app:
        app.default = reply
        workspace = make_workspace(tmp_path, manifest)
        run = run_entrypoint(
            tmp_path, workspace, None, {"fail-on": "errors", "comment": "never"}, {"APP_URL": app.url + "/promptflow"}
        )
    assert run.outputs["verdict"] == "fail" and run.outputs["errors"] == "3", run.stdout
    assert run.code == EXIT_RUN_ERRORS, run.stdout


# --- min_passes with errors -------------------------------------------------------------------------


def test_a_flaky_simulation_short_of_min_passes_only_by_errors_has_no_verdict_not_a_failure() -> None:
    # 4 of 5 must pass; 3 passed and 2 errored: the app failed nothing, the errors hide the answer
    verdict = simulation_verdict(fake_results("flaky", ["pass"] * 3 + ["error"] * 2, min_passes=4, required=True))
    assert (verdict["passes"], verdict["failures"], verdict["errors"], verdict["status"]) == (3, 0, 2, "error")
    gate = decide_gate({"flaky": verdict}, {"max_error_rate": 0.5, "min_pass_rate": 0.5})
    assert gate["status"] == "error" and not any("failed" in reason for reason in gate["reasons"]), gate["reasons"]
    # with one real failure the errored runs could still have made it: no verdict either
    verdict = simulation_verdict(fake_results("flaky", ["pass"] * 3 + ["fail", "error"], min_passes=4))
    assert verdict["status"] == "error"
    # and where even passing errored runs would not reach min_passes, the simulation failed
    verdict = simulation_verdict(fake_results("flaky", ["pass"] * 2 + ["fail", "fail", "error"], min_passes=4))
    assert verdict["status"] == "fail"
    verdict = simulation_verdict(fake_results("flaky", ["pass"] * 4 + ["error"], min_passes=4))
    assert verdict["status"] == "pass"

"""`clip`: one way to cut a text shown in a message, whatever the mark."""

from simulator.text.clip import clip


def test_a_text_within_the_limit_is_kept_and_a_longer_one_is_cut_to_the_limit_mark_included() -> None:
    assert clip("short", 10) == "short"
    assert clip("x" * 10, 10) == "x" * 10
    assert clip("x" * 11, 10) == "x" * 9 + "…"
    assert clip("x" * 11, 10, "...") == "x" * 7 + "..."
    assert len(clip("y" * 500, 40, "...")) == 40
    assert clip("abcdef", 2, "...") == "..."  # a limit shorter than the mark: the mark alone

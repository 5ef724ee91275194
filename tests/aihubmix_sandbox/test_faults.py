"""Fault markers in the prompt: what they parse into and how a counted fault stops striking."""

from aihubmix_sandbox.faults import FaultCounter, fault_parse


def test_fault_markers_parse_into_a_kind_and_an_optional_count() -> None:
    assert fault_parse("a cat [fault:429]") == ("429", None)
    assert fault_parse("a cat [fault:500x2]") == ("500", 2)
    assert fault_parse("a cat [fault:429-twice]") == ("429", 2)
    assert fault_parse("a cat [fault:not-image]") == ("not-image", None)
    assert fault_parse("a cat") == (None, None)


def test_a_counted_fault_strikes_its_number_of_times_per_exact_prompt() -> None:
    faults = FaultCounter()

    struck = [faults.active("a cat [fault:500x2]") for _ in range(3)]
    other_prompt = faults.active("a dog [fault:500x2]")
    faults.reset()

    assert struck == ["500", "500", None]
    assert other_prompt == "500"
    assert faults.active("a cat [fault:500x2]") == "500"
    assert faults.active("a cat [fault:hang]") == "hang"

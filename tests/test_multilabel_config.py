"""Multi-label Label Studio projects (issue 24): the config says so, an annotation is a set of classes."""
import pytest

from connectors.label_config import parse_label_config
from connectors.label_studio_common import choice_set_of, choice_set_result

XML = """<View><Text name="text" value="$text"/>
<Choices name="topic" toName="text" choice="{choice}"><Choice value="news"/><Choice value="sports"/>
<Choice value="tech"/></Choices></View>"""


@pytest.mark.parametrize("choice,multiple", [("multiple", True), ("single", False), ("single-radio", False)])
def test_choice_multiple_is_detected(choice, multiple):
    assert parse_label_config(XML.format(choice=choice)).multiple is multiple


def test_annotation_sets_empty_answer_and_skip_differ():
    config = parse_label_config(XML.format(choice="multiple"))
    region = lambda *c: {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": list(c)}}  # noqa: E731
    assert choice_set_of({"result": [region("tech", "news")]}, config) == (("news", "tech"), True, None)
    assert choice_set_of({"result": []}, config) == ((), True, None)                  # "none apply"
    assert choice_set_of({"result": [], "was_cancelled": True}, config) == (None, True, None)   # skipped
    labels, valid, problem = choice_set_of({"result": [region("news", "weather")]}, config)
    assert not valid and "weather" in problem
    assert choice_set_result(config, ["tech", "news"])["value"]["choices"] == ["news", "tech"]
    assert choice_set_result(config, [])["value"]["choices"] == []

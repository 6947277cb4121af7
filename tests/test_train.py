"""The training package: a method registered by name is trained and checked by `train_model`, every built-in method is found
through the registry, and an unknown one is refused with the names it could be."""
import pytest

from c2_course_correct.core import ConfigError, read_json, write_json
from c2_course_correct.train import METHODS, Method, TrainConfig, get_method, method_names, register, train_model


@pytest.fixture
def counting_method():
    "A method of one's own: its trainer counts the utility share it was given; its check reads that back."
    def train(cfg, out, progress):
        out.mkdir(parents=True, exist_ok=True)
        write_json(out/"stats.json", dict(method=cfg.method, utility_ratio=cfg.utility_ratio, steps=0))
        return read_json(out/"stats.json")
    def check(cfg, out):
        return dict(what="the utility share the trainer saw", seen=read_json(out/"stats.json")["utility_ratio"], passed=True)
    method = register(Method("counting", "a counting method", train, check))
    yield method
    from c2_course_correct import train as registry
    registry._REGISTRY.pop("counting")


def test_a_registered_method_is_trained_and_checked_by_name(counting_method, tmp_path):
    cfg = TrainConfig.from_profile("default", method="counting", utility_ratio=0.3, utility_data="default")
    stats = train_model(cfg, tmp_path/"run")
    assert stats["check"] == dict(what="the utility share the trainer saw", seen=0.3, passed=True)
    assert read_json(tmp_path/"run"/"stats.json")["check"] == stats["check"]          # kept in the run's record
    assert train_model(cfg, tmp_path/"run") == stats                                   # a checked run is read back as it is
    assert method_names() == [*METHODS, "counting"] and get_method("counting") is counting_method


def test_every_built_in_method_is_found_through_the_registry():
    found = {name: get_method(name) for name in METHODS}
    assert {name: m.what for name, m in found.items()} == {"c2syn-dpo": "C2-Syn DPO", "recovery-sft": "recovery SFT",
                                                          "derta": "DeRTa (MLE + RTO)", "backtrack": "backtracking SFT",
                                                          "circuit-breaker": "circuit breakers"}
    assert [name for name, m in found.items() if m.example is not None] == ["recovery-sft", "derta", "backtrack",
                                                                             "circuit-breaker"]   # token-record methods
    assert {m.train.__module__ for m in found.values()} == {"c2_course_correct.dpo", "c2_course_correct.recovery",
                                                            "c2_course_correct.derta", "c2_course_correct.backtrack",
                                                            "c2_course_correct.circuit_breaker"}


def test_an_unknown_method_is_refused_with_the_names_it_could_be():
    with pytest.raises(ConfigError, match=r"method must be one of \['c2syn-dpo', 'recovery-sft', 'derta', 'backtrack', 'circuit-breaker'\], got 'qlora'"):
        TrainConfig(method="qlora")
    with pytest.raises(ConfigError, match="method must be one of"): get_method("qlora")

import pytest

from edge.core.errors import EdgeError, UnknownNameError
from edge.core.formats import FORMATS, parse_format, parse_formats
from edge.core.registry import Registry


def test_registry_suggests_close_names():
    reg: Registry[int] = Registry("device")
    reg.register("local", 1)
    reg.register("pixel8", 2)
    assert reg.get("LOCAL") == 1
    with pytest.raises(UnknownNameError, match=r"unknown device 'pixl8'; did you mean 'pixel8'\?"):
        reg.get("pixl8")
    with pytest.raises(ValueError):
        reg.register("local", 3)


def test_gguf_formats_cover_the_llama_cpp_types():
    for name in ["f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k"]:
        assert f"gguf:{name}" in FORMATS
    assert not FORMATS.get("gguf:f16").quantized and FORMATS.get("gguf:q4_k_m").quantized


def test_parse_formats_keeps_order_and_drops_duplicates():
    reqs = parse_formats("gguf:q4_k_m, gguf:f16,gguf:q4_k_m,q8_0")
    assert [r.name for r in reqs] == ["gguf:q4_k_m", "gguf:f16", "gguf:q8_0"]


def test_unknown_format_did_you_mean():
    with pytest.raises(UnknownNameError, match="did you mean 'gguf:q4_k_m'"):
        parse_format("gguf:q4_km")


def test_format_parameters_are_validated():
    with pytest.raises(EdgeError, match="takes no parameter group"):
        parse_format("gguf:q4_0?group=32")
    with pytest.raises(EdgeError, match="no format given"):
        parse_formats(" , ")

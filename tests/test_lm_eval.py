"""The lm-eval extra: an lm-eval task YAML over a local data file, run by lm-eval itself on an edge artifact,
with the network unavailable (a new network namespace, or dead proxies where unshare is not allowed).
Oracle: edge eval's own per-item log-likelihoods on the same questions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("lm_eval")

from task_oracle import QUESTIONS  # noqa: E402

YAML = """\
task: edge_local_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
"""

SCRIPT = """\
import json, sys
import lm_eval
from lm_eval.tasks import TaskManager
import edge.lm_eval_model  # registers "edge"
res = lm_eval.simple_evaluate(model="edge", model_args="artifact=" + sys.argv[1], tasks=["edge_local_mc"],
                              task_manager=TaskManager(include_path=sys.argv[2], include_defaults=False),
                              log_samples=True, batch_size=1)
samples = [[float(r[0]) for r in s["filtered_resps"]] for s in sorted(res["samples"]["edge_local_mc"], key=lambda s: s["doc_id"])]
print("RESULT " + json.dumps({"acc": res["results"]["edge_local_mc"]["acc,none"], "lls": samples}))
"""


def _offline_prefix() -> list[str]:
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-rn"]
    return []


def test_lm_eval_task_on_an_edge_artifact_offline_equals_edge_eval(tiny_artifacts, tmp_path):
    from edge.evaluate import evaluate
    from edge.store import Store

    data = tmp_path / "data.jsonl"
    rows = [{"question": q["question"], "choices": q["choices"],
             "answer": q["choices"].index(q["answer"]) if isinstance(q["answer"], str) else q["answer"]} for q in QUESTIONS]
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "edge_local_mc.yaml").write_text(YAML.format(data=data), encoding="utf-8")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "PYTHONPATH": ":".join(p for p in sys.path if p)}
    art = tiny_artifacts["q4_0"]
    r = subprocess.run(_offline_prefix() + [sys.executable, str(script), str(art), str(tasks)], capture_output=True,
                       text=True, env=env, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("RESULT "))[7:])
    mine = tmp_path / "mine.jsonl"
    mine.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with Store(tmp_path / "s.sqlite") as st:
        src, row = evaluate([art], [str(mine)], store=st)
        items = st.task_items(row.id)
    assert got["acc"] == pytest.approx(row.acc)
    for theirs, ours in zip(got["lls"], items, strict=True):
        assert theirs == pytest.approx(ours.lls, abs=1e-4)   # the same prompts, ids and runtime: the same numbers

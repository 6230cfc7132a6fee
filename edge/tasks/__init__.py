"""Task-level quality: items (multiple choice, cloze, generation) from built-in sets and the user's JSONL,
tokenized once by the source tokenizer, scored on every runtime and compared with the source model."""

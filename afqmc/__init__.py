"""AFQMC-style sentence-pair similarity: JSONL data, a BERT encoder + custom head, the `afqmc` CLI."""

# Display names of the default binary labels "0"/"1".
LABEL_NAMES = {"0": "different", "1": "same meaning"}

"""Hugging Face ``Trainer`` with its own defaults on a pair set, scored on a held-out file: the peer of
``afqmc train`` in benchmarks/pretrained_recipe.py.

    python benchmarks/hf_trainer_heldout.py TRAIN DEV HELDOUT MODEL_DIR SEED [EPOCHS]

What a user of ``run_glue.py``-style code gets without tuning: ``AutoModelForSequenceClassification``
(its own head: BERT's pooler, new where the checkpoint has none), ``TrainingArguments`` defaults
(lr 5e-5, batch 8, linear decay without warm-up, no weight decay, fp32, 3 epochs unless EPOCHS), the last
model (no selection on dev), dynamic padding. Files are read with pairtrain's readers (any format, labels
as written) so that both sides see exactly the same pairs and labels. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    t0 = time.time()
    import numpy as np
    from datasets import Dataset
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from afqmc.data.sources import read_labelled, read_pairs

    train_file, dev_file, held_file, model_dir, seed = sys.argv[1:6]
    epochs = float(sys.argv[6]) if len(sys.argv) > 6 else 3.0
    train, labels = read_labelled(train_file, None)
    held = read_pairs(held_file, labels)
    tok = AutoTokenizer.from_pretrained(model_dir)

    def dataset(pairs):
        enc = tok([p.sentence1 for p in pairs], [p.sentence2 for p in pairs], truncation=True, max_length=128)
        return Dataset.from_dict({**enc, "labels": [p.label for p in pairs]})

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, num_train_epochs=epochs, seed=int(seed), save_strategy="no",
                                 eval_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, logging_steps=10**6)
        trainer = Trainer(model=model, args=args, train_dataset=dataset(train),
                          data_collator=DataCollatorWithPadding(tok))
        trainer.train()
        pred = trainer.predict(dataset(held))
    accuracy = float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())
    print(json.dumps({"heldout_accuracy": accuracy, "n": len(held), "labels": labels, "dev_unused": dev_file,
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()

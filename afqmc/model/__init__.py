"""The pair model: encoder families behind one head (encoders; BERT's fast forward in bert and
bert_forward), the scratch tokenizer, model directories (modeldir) with what inference needs saved in
them (settings), the masked-LM warm-up (pretrain), and PairScorer (scorer), which scores pairs as
predict does. Builds on afqmc.data; imports nothing from afqmc.commands."""

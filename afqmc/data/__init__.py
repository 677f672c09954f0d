"""Pair data: reading the user's files in every format (rows, tables, dataset_tables, charsets), which
columns and labels they hold (sources), streaming larger-than-memory files (stream), and tokenised,
length-grouped batches (batches). Imports nothing from afqmc.model or afqmc.commands."""

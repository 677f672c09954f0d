"""The `afqmc` commands: their typed configs (config), train, eval/predict (infer) and serve. The only
layer that reads command-line settings; afqmc.cli parses and dispatches to it."""

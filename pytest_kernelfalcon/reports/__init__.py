"""The run report and what is made from it: validation, CI gate, shards (a leaf: imports only core/)."""

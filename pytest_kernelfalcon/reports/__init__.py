"""The run report and what is made from it: summary, CI gate, shards, kernel timings."""

"""Demo and operator tools: sample receipts (``samples``, with ``sample_items.txt``) and the console commands."""

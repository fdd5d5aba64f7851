"""``make bench``: model-only ceilings, end-to-end throughput and the notebook baseline, side by side
(``run``). A development tool of the repository, not part of the installed package."""

"""Side-by-side benchmarks of evtrio against its peers (``make bench``)."""

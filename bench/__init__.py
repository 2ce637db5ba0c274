"""Benchmarks of the lab: instrumentation overhead, proxy, scrape cost, footprint, scale."""

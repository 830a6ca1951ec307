"""`make bench`: measures the gateway and rewrites BENCHMARKS.md (see bench.run).

Every section runs in a process of its own (`python -m bench.<section>`), which prints one JSON
object on stdout; bench.run collects them and bench.report renders BENCHMARKS.md from them.
"""

"""Kernel log source: parses /dev/kmsg records (or saved logs) and turns them into signals.

Pure logic (record parsing, multi-line grouping, rules, classification) is kept apart from
the only module that does I/O (`reader`), so every step can be tested on fixture text.
"""

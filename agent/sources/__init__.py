"""Signal sources: each watches one thing and emits `Signal`s; none decides health.

Every source records when it last completed a pass (`last_tick`), so the agent
can report a source that stopped or fell behind instead of going quietly blind.
"""

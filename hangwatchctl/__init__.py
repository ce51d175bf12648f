"""hangwatchctl: the SRE's command line for the hangwatch controller."""

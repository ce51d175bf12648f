"""The lab: a local cluster, scratch filesystems that really freeze, and a small CA.

For the demo, the tests and the benchmarks; never imported by the daemons or the CLI,
not shipped in the wheel."""

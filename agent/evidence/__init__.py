"""Evidence of confirmed lockups for vendor bug reports: what it holds (`facts`), how it
is read (`gather`), how big it may get (`bounds`) and how it joins its event (`collector`)."""

"""The command line on top: the one command table (`sysdl`) and the pipeline. Nothing imports it."""

"""The command line: every click command and the two entry points. ``prunebench`` is
:func:`.cli.main` (run, prune and dataset commands, and the report commands registered beside
them); ``prunebench-report`` is :func:`.report.main`, the report commands alone, without
importing torch. :mod:`.entry` turns a user's error into one line and an exit status.

Only this layer parses arguments; each command calls one function of the layers below.
"""

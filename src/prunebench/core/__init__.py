"""The bottom layer, used by every other: user errors (:mod:`.errors`), atomic writes and file
locks (:mod:`.io`), where a result came from (:mod:`.provenance`), how the papers print names
(:mod:`.names`) and small helpers (:mod:`.utils`: device, seeding, durations). Imports nothing
of prunebench but its version."""

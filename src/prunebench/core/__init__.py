"""The bottom layer, used by every other: user errors (:mod:`.errors`), atomic writes and file
locks (:mod:`.io`), where a result came from (:mod:`.provenance`), how the papers print names
(:mod:`.names`), the limits a command and the config check share (:mod:`.limits`) and small
helpers (:mod:`.utils`: device, seeding, durations). Imports nothing of prunebench but its
version."""

"""torchrun entry for the split-resume tests: prunebench with ``{rank}`` in its arguments
replaced by this process's rank, so each rank can be shown its own checkpoint file."""

import os
import sys

from prunebench.commands.cli import main

if __name__ == "__main__":
    main([a.replace("{rank}", os.environ.get("RANK", "0")) for a in sys.argv[1:]])

"""prunebench: is the pruned network worth more than the small one trained from scratch?"""

__version__ = "0.1.0"

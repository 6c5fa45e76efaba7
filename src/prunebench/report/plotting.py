"""How every report figure ends: its title, a tight layout, one atomic PNG write, the figure closed."""

from __future__ import annotations

from os import PathLike

from prunebench.core.io import atomic_path


def save_png(fig, out: str | PathLike, title: str | None = None, dpi: int = 150, fontsize: int = 10) -> None:
    """Write ``fig`` to ``out`` as a PNG (all or nothing) with ``title`` above its panels, and close it."""
    if title:
        fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    import matplotlib.pyplot as plt

    plt.close(fig)

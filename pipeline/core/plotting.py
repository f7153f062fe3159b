"""Plot helpers shared by the stages: a Hangul font, a message in place of a plot, common figures.

matplotlib is imported inside the functions: importing this module costs nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def hangul_font() -> str | None:
    """NanumGothic from the koreanize-matplotlib wheel, else any Hangul font the machine has.

    Without one, labels like 행정 are drawn as empty boxes. Only the font file is registered:
    importing that package would rewrite matplotlib's global settings.
    """
    from importlib.util import find_spec
    from pathlib import Path

    from matplotlib import font_manager

    spec = find_spec("koreanize_matplotlib")
    if spec and spec.origin:
        font = Path(spec.origin).parent / "fonts" / "NanumGothic.ttf"
        if font.is_file():
            font_manager.fontManager.addfont(str(font))
            return font_manager.FontProperties(fname=str(font)).get_name()
    for name in ("NanumGothic", "Noto Sans CJK KR", "Noto Sans KR", "UnDotum", "Malgun Gothic"):
        if any(f.name == name for f in font_manager.fontManager.ttflist):
            return name
    return None

def message_figure(title: str, text: str):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 2.5))
    figure.text(0.5, 0.5, f"{title}\n{text}", ha="center", va="center", wrap=True)
    return figure

def histogram_figure(values: Sequence[float], line_at: float, line_label: str, xlabel: str,
                     title: str) -> Figure:
    """A histogram with a vertical line (e.g. training lengths and maxlen), without pyplot,
    so no GUI backend and no global figure state are involved."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.subplots()
    axes.hist(values, bins=min(60, max(1, len(set(values)))), color="#4c72b0")
    axes.axvline(line_at, color="#c44e52", linestyle="--", label=line_label)
    axes.set(xlabel=xlabel, ylabel="rows", title=title)
    axes.legend()
    figure.tight_layout()
    return figure

def learning_curve_png(history: list[dict], target: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if any("member" in r for r in history):   # an ensemble: each member's curve, no single kept epoch
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for member in sorted({r["member"] for r in history}):
            rows = [r for r in history if r["member"] == member]
            for ax, metric in zip(axes, ("loss", "accuracy")):
                line, = ax.plot([r["epoch"] for r in rows], [r[f"val/{metric}"] for r in rows], "o-",
                                label=f"member {member} val")
                ax.plot([r["epoch"] for r in rows], [r[f"train/{metric}"] for r in rows], ":",
                        color=line.get_color(), label=f"member {member} train")
        for ax, metric in zip(axes, ("loss", "accuracy")):
            ax.set_xlabel("epoch")
            ax.set_title(metric)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(target, dpi=100)
        plt.close(fig)
        return
    epochs = [r["epoch"] for r in history]
    best = epochs[int(np.argmin([r["val/loss"] for r in history]))]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [r[f"train/{metric}"] for r in history], "o-", label="train")
        ax.plot(epochs, [r[f"val/{metric}"] for r in history], "o-", label="val")
        ax.axvline(best, ls=":", color="grey", label=f"kept (epoch {best})")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)


def blend_png(choice: dict, target: Path) -> None:
    """The champion's choice as a picture: the selected validation figure for every blend weight,
    the RNN at w = 1 and the linear model at w = 0, the champion marked (champion.json's record)."""
    from matplotlib.figure import Figure

    from pipeline.core.atomic import write_png

    metric, candidates = choice["select_by"], choice["candidates"]
    points = [(0.0, candidates["linear"][metric]), *((g["weight"], g[metric]) for g in choice["grid"]),
              (1.0, candidates["rnn"][metric])] if "linear" in candidates else [(1.0, candidates["rnn"][metric])]
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
    axes.plot([w for w, _ in points], [v for _, v in points], "o-", color="#4c72b0", label="w·RNN + (1−w)·linear")
    served = {"rnn": 1.0, "linear": 0.0}.get(choice["kind"], choice["weight"])
    axes.plot([served], [candidates[choice["kind"]][metric]], "*", markersize=16, color="#c44e52",
              label=f"champion: {choice['kind']}" + (f" (w = {served:g})" if choice["kind"] == "blend" else ""))
    axes.set(xlabel="w, the RNN's weight (0: linear model, 1: RNN)", ylabel=metric,
             title=f"{metric} on {choice['selected_on']} ({choice['rows']:,} rows)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    write_png(figure, target)

"""Figures of a run's validation predictions for TensorBoard (matplotlib). main.py logs one every
config.figure_every epochs through `rec.figure(tag, epoch, draw, *data)`, which draws it off the
training loop; add yours the same way. Images and histograms go straight to the run's writer:
`rec.writer.add_image(...)`, `rec.writer.add_histogram(...)` (rank 0 only: `if rec.active`)."""
import torch


def draw(out, y, task):
    """The figure for the task: a confusion matrix, or predicted against true values."""
    return confusion(out.argmax(1), y, out.shape[1]) if task == "classification" else scatter(out.squeeze(-1), y)


def confusion(predicted, true, classes):
    counts = torch.zeros(classes, classes, dtype=torch.int64)
    counts.index_put_((true, predicted), torch.ones_like(true), accumulate=True)
    fig, ax = figure()
    ax.imshow(counts.numpy(), cmap="Blues")
    ax.set(xlabel="predicted", ylabel="true", xticks=range(classes), yticks=range(classes))
    for (i, j), n in zip(counts.nonzero().tolist(), counts[counts > 0].tolist()):
        ax.text(j, i, n, ha="center", va="center", fontsize=6)
    return fig


def scatter(predicted, true):
    fig, ax = figure()
    ax.scatter(true.numpy(), predicted.numpy(), s=6)
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=0.8)  # where a perfect prediction lies
    ax.set(xlabel="true", ylabel="predicted")
    return fig


def figure():
    from matplotlib.figure import Figure  # not pyplot: no global state, safe off the main thread
    fig = Figure(figsize=(4, 4), dpi=80, layout="tight")
    return fig, fig.add_subplot()

"""Pictures of a run's validation predictions in TensorBoard, every config.figure_every epochs
(main.py calls log(run.recorder, ...)). Three ways in, each a no-op on all but rank 0:
  - rec.image(tag, image, epoch): an image tensor, PNG-encoded on the background writer;
  - rec.figure(tag, epoch, draw, *data): the matplotlib figure draw(*data) returns, drawn and
    rendered on the background writer (matplotlib costs tens of milliseconds a figure);
  - rec.writer: the run's SummaryWriter, for anything else (add_histogram, ...; `if rec.active`).
The classification demo logs an image made with torch alone (well under a millisecond), so the
epoch benchmark stays within its target; the regression example logs a matplotlib figure.
"""
import torch


def log(rec, epoch, out, y):
    if out.dim() > 2:
        return  # a class per position (a language model's (N, T, V)): no picture here
    if y.is_floating_point():
        rec.figure("val/predicted", epoch, scatter, out.squeeze(-1), y)
    else:
        rec.image("val/confusion", confusion(out.argmax(1), y, out.shape[1]), epoch)


def confusion(predicted, true, classes, cell=16):
    """The confusion matrix as a grey image, (1, H, W): a row per true class, a column per
    predicted class, darker where more of the row's samples went."""
    counts = torch.zeros(classes, classes).index_put_((true, predicted), torch.ones(len(true)), accumulate=True)
    share = counts / counts.sum(1, keepdim=True).clamp(min=1)
    return (1 - share).repeat_interleave(cell, 0).repeat_interleave(cell, 1).unsqueeze(0)


def scatter(predicted, true):
    """Predicted against true values, and the diagonal where a perfect prediction lies."""
    from matplotlib.figure import Figure  # not pyplot: no global state, safe off the main thread
    fig = Figure(figsize=(4, 4), dpi=80, layout="tight")
    ax = fig.add_subplot()
    ax.scatter(true.numpy(), predicted.numpy(), s=6)
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=0.8)
    ax.set(xlabel="true", ylabel="predicted")
    return fig

"""Your own evaluations of a trained run, beside the template's: `expeval <runs> --fn NAME`.

A function here is what `eval --fn NAME` calls, as epoch.evaluate (the default) is called:
fn(model, loader, args) -> {metric: number}. `model` holds the checkpoint's weights (eval mode,
on args.device, under torch.no_grad()), `loader` is the split chosen (split=test by default)
of the data the config builds, `args` the run's config with the eval's overrides. The metrics
go into the run's record as eval/<name>/<split>/<metric>. Plain PyTorch: edit freely.
"""
import torch
import torch.nn.functional as F

import epoch


def shifted(model, loader, args):
    """Test-time augmentation: an image's class from its probabilities averaged over the image
    and its four one-pixel shifts (up, down, left, right), beside the plain accuracy."""
    model.eval()
    right, plain, n = 0.0, 0.0, 0
    for x, y in loader:
        x, y = x.to(args.device), y.to(args.device)
        with epoch.autocast(args):
            views = [x] + [torch.roll(x, shift, dims) for shift in (1, -1) for dims in (-1, -2)]
            probs = [F.softmax(model(view).float(), -1) for view in views]
        right += (torch.stack(probs).mean(0).argmax(-1) == y).sum().item()
        plain += (probs[0].argmax(-1) == y).sum().item()
        n += len(y)
    return {"acc": right / n, "plain_acc": plain / n}

"""One run's checkpoint scored in a process of its own: `python child.py CODE REQUEST`.

CODE is the code/ folder of the checkout whose evaluation counts: the project's at HEAD, or a
worktree of the run's commit (`eval --at-run`). It replaces this script's folder at the head
of sys.path, so everything imported here (config.py, args_process, dataloader, model, epoch,
evaluate.py, and utils) is that commit's; only this file's text is the CLI's. REQUEST (JSON):
the checkpoint's path, the overrides (the run's, then the eval's), the split, the function
(`module.name` of code/), the run's seed.

What it does is what main.py's train(run) does for its test, with the checkpoint's weights:
config -> dataloader.build -> model.build -> load the weights -> fn(model, loader, args), the
default fn being epoch.evaluate. The metrics go out as one JSON line on the stdout it was
started with (what the code prints goes to stderr). Exit 0; 2 with one `runtag:` line (a
checkpoint that does not load or does not fit, a function that is not there); 1 with the
traceback (the researcher's code failed).
"""
import importlib
import json
import os
import sys


def main(code, request):
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the researcher's prints must not mix into the result line
    sys.path[0] = code
    from utils.errors import UserError, report
    try:
        metrics = score(json.loads(request), UserError)
    except UserError as err:
        return report(err)
    out.write(json.dumps(metrics) + "\n")
    out.flush()
    return 0


def score(request, UserError):
    import torch
    from utils import overrides, settings
    args = settings.process(overrides.apply(overrides.load_config(), request["overrides"]))
    import dataloader
    import model as models
    loaders = dataloader.build(args, request["seed"])
    loader = dict(zip(("train", "val", "test"), loaders[:3]))[request["split"]]
    net = models.build(args, loaders[3])
    load(net, request["file"], args, UserError)
    net.to(args.device).eval()
    fn = function(request["fn"], UserError)
    with torch.no_grad():
        return numbers(fn(net, loader, args), request["fn"], UserError)


def load(net, path, args, UserError):
    """The checkpoint's model weights into the model the config builds."""
    from utils.checkpoints import Unloadable, load as load_file
    name = os.path.basename(path)
    try:
        state = load_file(path)
    except Unloadable as err:
        raise UserError(f"checkpoint {name} does not load: {err.why}", "choose another --checkpoint") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise UserError(f"checkpoint {name} holds no `model` weights", "eval scores what run.track(model=...) saved")
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as err:  # another data set's shape: the weights fit another model
        why = " ".join(str(err).split())[:200]
        raise UserError(f"the weights of {name} do not fit the model data={args.data} builds: {why}",
                        "score it on data of the shape it was trained on") from None


def function(dotted, UserError):
    """`module.name` of code/: a function (model, loader, args) -> dict of metrics."""
    module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise  # the module is there, and its own import failed: a bug to show
        raise UserError(f"this commit has no code/{module_name}.py for --fn", "commit it, or eval without --at-run") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UserError(f"code/{module_name}.py has no function {attr}", f"define {attr}(model, loader, args) there")
    return fn


def numbers(result, dotted, UserError, prefix=""):
    """The metrics as {name: float}; nested dicts become `outer/inner` names."""
    if not isinstance(result, dict):
        raise UserError(f"{dotted} returned {type(result).__name__}, not a dict of metrics",
                        "return {name: number, ...}")
    flat = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update(numbers(value, dotted, UserError, f"{prefix}{key}/"))
            continue
        try:
            flat[f"{prefix}{key}"] = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{dotted} returned {key}={type(value).__name__}, not a number",
                            "return {name: number, ...}") from None
    return flat


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

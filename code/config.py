"""Every static argument of an experiment: plain assignments, one per line, each with a comment.

Override any of them per run from the shell: `run wide lr=0.01 epochs=40`.
Checks of your keys live in args_process.py (utils/settings.py checks the tooling's).
"""

# data
data = "digits"            # "digits" (8x8 images, 10 classes) or "diabetes" (10 features, a number to predict): both
                           # bundled with scikit-learn; "stdlib" (characters of Python's own library source, for
                           # model=gpt); or a folder under __data__/ (see dataloader.py)
val_ratio = 0.15           # fraction of the samples held out for validation
test_ratio = 0.15          # fraction held out for the final test
split_seed = 0             # the split's own seed: every run, whatever its seed, sees the same test set

# model
model = "cnn"              # a name known to model.build(): cnn (images) | mlp (flat features, e.g. data=diabetes) |
                           # gpt (a character-level transformer, data=stdlib)
channels = 32              # width of the first convolution; the second has twice as many
dropout = 0.25             # dropout before the classifier
width = 64                 # mlp: units of each hidden layer; gpt: the embedding's size
layers = 2                 # gpt: transformer blocks
heads = 4                  # gpt: attention heads per block (width must be a multiple of it)
context = 64               # gpt: characters a window shows; the model predicts each next one

# optimisation
optimizer = "adam"         # adam | adamw | sgd
lr = 2e-3                  # learning rate
momentum = 0.9             # sgd only
weight_decay = 0.0         # L2 penalty
lr_schedule = "cosine"     # none | step | cosine: over the run's optimizer steps, after the warm-up
warmup_steps = 0           # optimizer steps of a linear warm-up from 0 to lr
lr_step = 10               # step schedule: epochs between decays (optimizer steps when max_steps is set)
lr_gamma = 0.1             # step schedule: decay factor
epochs = 20                # number of training epochs (when max_steps is 0)
max_steps = 0              # optimizer steps to train; 0: train `epochs` epochs
eval_every = 0             # optimizer steps between evaluations; 0: at each epoch's end
log_every = 0              # optimizer steps between training scalars in TensorBoard; 0: at evaluations only
batch_size = 64            # samples per batch (per process under DDP)
grad_accum = 1             # batches per optimizer step: the effective batch is batch_size x grad_accum x processes
clip_grad = 0.0            # clip the gradients' norm to this before each step; 0: no clipping
precision = "fp32"         # fp32 | bf16 | fp16: autocast of forward and loss (fp16, CUDA only, with a GradScaler)
compile = False            # torch.compile the model (checkpoints hold the plain model's state_dict)

# best model and early stopping
best_metric = "val/acc"    # the metric that decides which epoch is "best": train/ or val/ and a name epoch.py reports
                           # (args_process.METRICS: digits: loss, acc; diabetes: loss, mse, mae)
best_mode = "max"          # max | min: whether a larger best_metric is better
patience = 0               # stop after this many evaluations without a new best; 0 never stops early

# checkpoints and machinery
checkpoint_every = 1       # write checkpoint/epoch_<n>.pth every this many epochs ...
checkpoint_steps = 0       # ... and epoch_<n>_step_<k>.pth every this many optimizer steps inside an epoch (0: never) ...
checkpoint_interval = None # ... as often as a write costs at most 1% of the training time since the last (the first
                           # evaluation's always), or with seconds here never more often than that (0: every time).
                           # The best epoch, the last one and a stop (Ctrl-C, SIGTERM: at the next step's end) always.
checkpoint_copy_mb = 256   # a state up to this size is copied to host memory and written in the background; a larger
                           # one is written from the live state while training waits (no second copy in memory)
keep_checkpoints = 2       # checkpoint files kept besides last and best; 0 keeps them all
keep_checkpoints_done = None  # at a finished run's end, files kept besides last and best (0: just those); None: as is
device = "auto"            # auto | cpu | cuda | cuda:1
num_workers = 0            # DataLoader worker processes; 0 loads in the training process
figure_every = 5           # a figure of the validation predictions in TensorBoard every this many evaluations; 0: none
tensorboard = True         # `run` starts one TensorBoard over __result__ in the background (never under CI)
notify = ""                # a shell command run (sh -c) when a run or a sweep ends, facts in RUNTAG_RUN, RUNTAG_STATUS,
                           # RUNTAG_BEST, ... (docs/notify.md), e.g. 'notify-send "$RUNTAG_RUN $RUNTAG_STATUS"'
notify_timeout = 30.0      # seconds a notify command may take before it is killed (the run's status never changes)

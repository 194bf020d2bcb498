"""The local queue: `run --queue` (verb.py), its slots (slots.py), the waiter that starts the runs
(waiter.py), and `queue` to list or take them out (verb.py). See docs/queue.md."""

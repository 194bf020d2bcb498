# runtag's shell commands. Source it once per shell, from bash or zsh:  . code/source.sh
# Each function only forwards to the Python CLI (code/utils/cli.py), which holds all logic.
# No `continue` here: it is a shell builtin, and shadowing it breaks loops. Use `con`.

if [ -n "${BASH_VERSION:-}" ]; then
    _runtag_code=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
else
    _runtag_code=$(cd "$(dirname "${(%):-%x}")" && pwd)
fi
_runtag_root=$(dirname "$_runtag_code")

# The README's set-up makes .venv at the root: use it, and put it on PATH.
if [ -f "$_runtag_root/.venv/bin/activate" ] && [ "${VIRTUAL_ENV:-}" != "$_runtag_root/.venv" ]; then
    . "$_runtag_root/.venv/bin/activate"
fi

_runtag() { python "$_runtag_code/utils/cli.py" "$@"; }

run()    { _runtag run "$@"; }
con()    { _runtag continue "$@"; }
rerun()  { _runtag rerun "$@"; }
re()     { _runtag rerun "$@"; }
sweep()  { _runtag sweep "$@"; }
record() { _runtag record "$@"; }
title()  { _runtag title "$@"; }
table()  { _runtag table "$@"; }
plot()   { _runtag plot "$@"; }
expdiff() { _runtag diff "$@"; }  # not `diff`: that would shadow diff(1)
itb()    { _runtag itb "$@"; }
expls()  { _runtag expls "$@"; }
expels() { _runtag expels "$@"; }

# Tab completion: options and existing tags.
_runtag_complete() {
    local word="${COMP_WORDS[COMP_CWORD]}"
    COMPREPLY=($(compgen -W "$(_runtag tags 2>/dev/null)" -- "$word"))
}
if [ -n "${ZSH_VERSION:-}" ]; then
    autoload -Uz compinit bashcompinit
    (( ${+functions[compdef]} )) || compinit -u -D
    bashcompinit
fi
complete -F _runtag_complete run con rerun re record itb expels plot expdiff sweep

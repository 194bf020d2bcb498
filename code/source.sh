# runtag's shell commands. Source it once per shell, from bash or zsh:  . code/source.sh
# Each function only forwards to the Python CLI (code/utils/cli.py), which holds all logic,
# so the commands work from any directory once defined.
# No `continue` here: it is a shell builtin, and shadowing it breaks loops. Use `con`.

if [ -n "${BASH_VERSION:-}" ]; then
    _runtag_code=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
else
    _runtag_code=$(cd "$(dirname "${(%):-%x}")" && pwd)  # zsh: the file being sourced
fi
_runtag_root=$(dirname "$_runtag_code")

# The README's set-up makes .venv at the root: use it, and put it on PATH.
if [ -f "$_runtag_root/.venv/bin/activate" ] && [ "${VIRTUAL_ENV:-}" != "$_runtag_root/.venv" ]; then
    . "$_runtag_root/.venv/bin/activate"
fi

# `python` as the venv (or the user's environment) provides it; python3 where there is no `python`.
_runtag_python=python
command -v python >/dev/null 2>&1 || _runtag_python=python3
_runtag() { command "$_runtag_python" "$_runtag_code/utils/cli.py" "$@"; }

# An alias of the same name would garble the definitions below and shadow them afterwards.
unalias run con rerun re sweep record title table plot expdiff itb expls expels >/dev/null 2>&1 || true

run()     { _runtag run "$@"; }
con()     { _runtag continue "$@"; }
rerun()   { _runtag rerun "$@"; }
re()      { _runtag rerun "$@"; }
sweep()   { _runtag sweep "$@"; }
record()  { _runtag record "$@"; }
title()   { _runtag title "$@"; }
table()   { _runtag table "$@"; }
plot()    { _runtag plot "$@"; }
expdiff() { _runtag diff "$@"; }  # not `diff`: that would shadow diff(1)
itb()     { _runtag itb "$@"; }
expls()   { _runtag expls "$@"; }
expels()  { _runtag expels "$@"; }

# Tab completion: a verb's options after `-`, else existing tags (and tag/id for the verbs that
# take one), else file names. bash calls this with the command, the word and the word before;
# zsh's bashcompinit does the same (under sh emulation: keep this plain POSIX-ish).
# Names are data: any folder under a shared __result__ can be named `$(...)`, and `compgen -W`
# would run it. So the words are matched one line at a time, never expanded.
_runtag_complete() {
    local words word
    case "$2" in
        -*) words=$(_runtag tags --options "$1" 2>/dev/null) ;;
        *)  case "$1:$3" in
                run:-m) words= ;;
                run:--from|run:--init-from) words=$(_runtag tags --runs 2>/dev/null) ;;
                run:*|expels:*|sweep:*) words=$(_runtag tags 2>/dev/null) ;;
                con:*) words=$(_runtag tags --unfinished 2>/dev/null) ;;  # a finished run is refused
                title:*|table:*|record:-l) words=$(_runtag tags --lists 2>/dev/null) ;;
                *) words=$(_runtag tags --runs 2>/dev/null) ;;
            esac ;;
    esac
    COMPREPLY=()
    while IFS= read -r word; do
        case "$word" in "$2"*) [ -n "$word" ] && COMPREPLY+=("$word") ;; esac
    done <<EOF
$words
EOF
}
if [ -n "${ZSH_VERSION:-}" ]; then
    # compinit -u: no question about insecure directories; -D: no dump file written.
    autoload -Uz compinit bashcompinit
    (( ${+functions[compdef]} )) || compinit -u -D
    bashcompinit
fi
complete -o default -F _runtag_complete run con rerun re record title table itb expels plot expdiff sweep

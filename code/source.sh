# runtag's shell commands. Source it once per shell, from bash or zsh:  . code/source.sh
# Each function only forwards to the Python CLI (code/utils/cli.py), which holds all logic and
# the list of names, so the commands work from any directory once defined.
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

# One function per name of cli.py's SHELL table, each forwarding its own name: `con` runs
# `cli.py con`, which is the verb `continue`. An alias of the same name would garble the
# definition and shadow it afterwards, so it goes first.
_runtag_names=$(_runtag --functions)
while IFS= read -r _runtag_name; do
    unalias "$_runtag_name" >/dev/null 2>&1 || true
    eval "$_runtag_name() { _runtag $_runtag_name \"\$@\"; }"
done <<EOF
$_runtag_names
EOF

# Tab completion: cli.py says which words fit (a verb's options after `-`, tags, runs, lists);
# here they are only filtered by what is typed. bash calls this with the command, the word and
# the word before; zsh's bashcompinit does the same (under sh emulation: keep this plain).
# Names are data: any folder under a shared __result__ can be named `$(...)`, and `compgen -W`
# would run it. So the words are matched one line at a time, never expanded.
_runtag_complete() {
    local word
    COMPREPLY=()
    while IFS= read -r word; do
        case "$word" in "$2"*) [ -n "$word" ] && COMPREPLY+=("$word") ;; esac
    done <<EOF
$(_runtag --complete "$1" "$2" "$3" 2>/dev/null)
EOF
}
if [ -n "${ZSH_VERSION:-}" ]; then
    # compinit -u: no question about insecure directories; -D: no dump file written.
    autoload -Uz compinit bashcompinit
    (( ${+functions[compdef]} )) || compinit -u -D
    bashcompinit
fi
while IFS= read -r _runtag_name; do
    complete -o default -F _runtag_complete "$_runtag_name"
done <<EOF
$_runtag_names
EOF
unset _runtag_name

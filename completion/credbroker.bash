# SPDX-License-Identifier: Apache-2.0
# bash completion for credbroker(1).  Verbs and flags come from the CLI
# itself (`credbroker --list-commands`, `credbroker VERB --help`), so this
# file never lists them twice.
_credbroker() {
        local cur prev verb i
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        verb=
        for ((i = 1; i < COMP_CWORD; i++)); do
                case ${COMP_WORDS[i]} in
                --socket | --admin-socket) ((i++)) ;;
                --*) ;;
                *) verb=${COMP_WORDS[i]}; break ;;
                esac
        done
        case $prev in
        --socket | --admin-socket | --ca-file | --file | --state-dir | --output | -o)
                COMPREPLY=($(compgen -f -- "$cur")); return ;;
        esac
        if [[ -z $verb ]]; then
                if [[ $cur == -* ]]; then
                        COMPREPLY=($(compgen -W "--socket --admin-socket --help --version" -- "$cur"))
                else
                        COMPREPLY=($(compgen -W "$(credbroker --list-commands 2>/dev/null)" -- "$cur"))
                fi
                return
        fi
        if [[ $cur == -* ]]; then
                # Every --flag the verb's usage text names.
                COMPREPLY=($(compgen -W "$(credbroker "$verb" --help 2>/dev/null |
                        grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)" -- "$cur"))
        fi
}
complete -o default -F _credbroker credbroker

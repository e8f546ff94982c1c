# shellcheck shell=sh
# In L1: the address of one kernel symbol, from /proc/kallsyms (slow under TCG: about 2 s,
# so a chain snapshot records it when saved). Arguments: symbol [file, /proc/kallsyms]
set -e
addr=$(awk -v s="$1" '$3 == s { print $1; exit }' "${2:-/proc/kallsyms}")
[ -n "$addr" ] || { echo "no $1 in /proc/kallsyms (its module not loaded?)" >&2; exit 3; }
case $addr in
    *[!0]*) echo "$addr" ;;
    *) echo "/proc/kallsyms hides addresses (kptr_restrict): $1 unknown" >&2; exit 4 ;;
esac

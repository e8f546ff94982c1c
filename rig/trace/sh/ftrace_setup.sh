# shellcheck shell=sh
# In L1: switch on the events rig.trace.l1_ftrace reads; exits non-zero with the reason if
# this kernel cannot (no tracefs, no kprobe events).
# Arguments: tracefs handler-name probe... -- optional-probe...
#   each probe "function=fetch" (fetch: how the kprobe reads the irq, empty for none); an
#   optional probe this kernel lacks (inlined, renamed) is left out and named on stderr.
set -e
tracefs=$1 handler=$2
shift 2
grep -q " $tracefs " /proc/mounts || mount -t tracefs nodev "$tracefs"
cd "$tracefs"
[ -e kprobe_events ] || { echo "no kprobe_events in tracefs (CONFIG_KPROBE_EVENTS)" >&2; exit 3; }
echo 0 > tracing_on
echo > trace
echo 4096 > buffer_size_kb
# A second drive on the same chain re-arms: kprobe events still enabled make clearing
# kprobe_events fail with EBUSY.
if [ -d events/rig ]; then echo 0 > events/rig/enable; fi
echo > kprobe_events
optional=
for probe in "$@"; do
    if [ "$probe" = "--" ]; then optional=1; continue; fi
    f=${probe%%=*} fetch=${probe#*=}
    line="p:rig/$f $f${fetch:+ irq=$fetch}"
    if [ -n "$optional" ]; then
        echo "$line" >> kprobe_events 2>/dev/null || echo "no probe on $f (not in this kernel)" >&2
    else
        echo "$line" >> kprobe_events
    fi
done
echo "name ~ \"$handler*\"" > events/irq/irq_handler_entry/filter
for d in events/rig/*/; do echo 1 > "${d}enable"; done
echo 1 > events/irq/irq_handler_entry/enable
echo 1 > tracing_on

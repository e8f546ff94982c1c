# shellcheck shell=sh
# In L2: find the passed-through device's tty, open it raw, print one line per byte read.
# The first line says what it found: READER dev=... tty=... irq=...
# Arguments: vendor device console (L2's own console, never the device's tty)
vendor=$1 device=$2 console=$3
dev=
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = "$vendor" ] && [ "$(cat "$d/device")" = "$device" ] && dev=${d##*/}
done
[ -n "$dev" ] || { echo "no $vendor:$device PCI device" >&2; exit 3; }
p=/sys/bus/pci/devices/$dev
# A UART: since 6.x the tty hangs below serial-base devices: $p/<ctrl>/<port>/tty/ttySN.
tty=
for t in "$p"/tty/* "$p"/*/*/tty/*; do
    if [ -e "$t" ]; then tty=${t##*/}; break; fi
done
# A virtio console: virtio_console gives its port 0 an hvc tty with no sysfs link to the
# device; it is the one hvc besides the console that opens (the others have no backend).
if [ -z "$tty" ] && ls -d "$p"/virtio* >/dev/null 2>&1; then
    for t in /dev/hvc*; do
        [ "${t##*/}" = "$console" ] && continue
        if (exec 3<"$t") 2>/dev/null; then tty=${t##*/}; break; fi
    done
fi
if [ -z "$tty" ]; then
    echo "no tty for $dev (its driver did not bind): $(echo /dev/hvc* "$p"/virtio*/virtio-ports/* | tr '\n' ' ')" \
        "$(dmesg | grep -iE "serial|8250|virtio|hvc|$dev" | tail -n4)" >&2
    exit 4
fi
exec 3<"/dev/$tty"
stty raw -echo <&3
echo "READER dev=$dev tty=$tty irq=$(cat "$p/irq")"
# shellcheck disable=SC3045 # busybox read has -n
while IFS= read -r -n1 _ <&3; do echo R; done

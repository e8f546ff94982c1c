# shellcheck shell=sh
# In L2: find the passed-through UART, open it raw, print one line per byte read.
# The first line says what it found: READER dev=... tty=... irq=...
# Arguments: vendor device
vendor=$1 device=$2
dev=
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = "$vendor" ] && [ "$(cat "$d/device")" = "$device" ] && dev=${d##*/}
done
[ -n "$dev" ] || { echo "no $vendor:$device PCI device" >&2; exit 3; }
p=/sys/bus/pci/devices/$dev
# Since 6.x the tty hangs below serial-base devices: $p/<ctrl>/<port>/tty/ttySN.
tty=
for t in "$p"/tty/* "$p"/*/*/tty/*; do
    if [ -e "$t" ]; then tty=${t##*/}; break; fi
done
if [ -z "$tty" ]; then
    echo "no tty for $dev (8250_pci did not bind): $(dmesg | grep -iE "serial|8250|$dev" | tail -n3)" >&2
    exit 4
fi
exec 3<"/dev/$tty"
stty raw -echo <&3
echo "READER dev=$dev tty=$tty irq=$(cat "$p/irq")"
# shellcheck disable=SC3045 # busybox read has -n
while IFS= read -r -n1 _ <&3; do echo R; done

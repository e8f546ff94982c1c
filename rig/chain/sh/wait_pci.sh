# shellcheck shell=sh
# In L1 or L2: wait until a hotplugged PCI device is on the bus and its driver has probed it (the
# rig's legacy device borrows pci-serial's IDs, which 8250_pci takes), so that bind.sh
# finds it settled. Arguments: vendor device timeout-seconds
vendor=$1 device=$2 limit=$3
end=$(( $(date +%s) + limit ))
while :; do
    for d in /sys/bus/pci/devices/*; do
        if [ "$(cat "$d/vendor")" = "$vendor" ] && [ "$(cat "$d/device")" = "$device" ] && [ -e "$d/driver" ]; then
            echo "${d##*/} $(basename "$(readlink "$d/driver")")"
            exit 0
        fi
    done
    [ "$(date +%s)" -lt "$end" ] || { echo "no $vendor:$device PCI device with a driver after ${limit} s" >&2; exit 3; }
    sleep 0.1
done

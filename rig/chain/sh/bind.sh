# shellcheck shell=sh
# In L1: bind the device under test to vfio-pci and print its facts as one line of
# key=value pairs. Fails loudly (a message on stderr, a distinct exit status).
# Arguments: vendor device vfio-pci-module-args iommu-module [kvm-module [its args...]]
# (no KVM module: L1's CPU offers no virtualization, L2 runs under TCG). Vendor and device
# "-": the modules alone, before the device is there (a chain saved without a device that
# joins it later, rig.chain.chain); the line says kvm= only.
set -e
vendor=$1 device=$2 vfio_args=$3 iommu_module=$4
shift 4
load_modules() {
    # shellcheck disable=SC2086 # the module's arguments, if any, are words
    modprobe vfio-pci $vfio_args || [ -d /sys/module/vfio_pci ]
    # Built into the kernel under test, it is no module to load (the config check saw it).
    modprobe "$iommu_module" 2>/dev/null || [ -d "/sys/module/$iommu_module" ] ||
        echo "note: $iommu_module is not a module here (built in?)" >&2
}
kvm_state() {
    if [ $# -gt 0 ]; then modprobe "$@" 2>/dev/null || true; fi
    kvm=no; [ -e /dev/kvm ] && kvm=yes
    echo "$kvm"
}
if [ "$vendor" = - ]; then
    load_modules
    echo "kvm=$(kvm_state "$@")"
    exit 0
fi
# The first device with these IDs is the one under test; any other is its twin on the same
# INTx line (the exclusive scenario), given to vfio-pci as well.
dev='' twins=''
for d in /sys/bus/pci/devices/*; do
    if [ "$(cat "$d/vendor")" != "$vendor" ] || [ "$(cat "$d/device")" != "$device" ]; then continue; fi
    if [ -z "$dev" ]; then dev=${d##*/}; else twins="$twins ${d##*/}"; fi
done
[ -n "$dev" ] || { echo "no $vendor:$device PCI device" >&2; exit 3; }
load_modules
p=/sys/bus/pci/devices/$dev
# The IRQ's count so far (its boot driver's interrupts): vfio's line counts on from there.
irqcount=none
if [ -e "$p/driver" ]; then
    irqcount=$(awk -v irq="$(cat "$p/irq"):" '$1 == irq { print $2 }' /proc/interrupts)
    echo "$dev" > "$p/driver/unbind"
fi
# Does the command register's INTx-disable bit (10) stick? (PCI 2.3 yes, 2.2 no) Write
# the high byte with bit 2 set, read back, restore. A zero byte comes from /dev/zero:
# busybox printf writes no byte for an octal zero, and a missed restore leaves INTx disabled.
cfgbyte() { od -An -tu1 -j5 -N1 "$p/config" | tr -d ' '; }
setbyte() {
    # shellcheck disable=SC2059 # the format is the byte, as an octal escape
    if [ "$1" -eq 0 ]; then head -c1 /dev/zero; else printf "\\$(printf %o "$1")"; fi |
        dd of="$p/config" bs=1 seek=5 count=1 conv=notrunc 2>/dev/null
}
hi=$(cfgbyte)
setbyte $((hi | 4))
hi2=$(cfgbyte)
setbyte "$hi"
[ "$(cfgbyte)" = "$hi" ] || { echo "could not restore the command register of $dev" >&2; exit 7; }
disintx=no; [ $((hi2 & 4)) -ne 0 ] && disintx=yes
to_vfio() {
    [ -e "/sys/bus/pci/devices/$1/driver" ] && echo "$1" > "/sys/bus/pci/devices/$1/driver/unbind"
    echo vfio-pci > "/sys/bus/pci/devices/$1/driver_override"
    echo "$1" > /sys/bus/pci/drivers_probe
    drv=$(basename "$(readlink "/sys/bus/pci/devices/$1/driver")")
    [ "$drv" = vfio-pci ] || { echo "$1 bound to '$drv', not vfio-pci" >&2; exit 4; }
}
to_vfio "$dev"
for t in $twins; do to_vfio "$t"; done
group=$(basename "$(readlink "$p/iommu_group")")
[ -e "/dev/vfio/$group" ] || { echo "/dev/vfio/$group missing" >&2; exit 5; }
kvm=$(kvm_state "$@")
mask=$(cat /sys/module/vfio_pci/parameters/nointxmask)
[ "$mask" = Y ] || [ -z "$vfio_args" ] || { echo "vfio_pci nointxmask is $mask, not Y" >&2; exit 6; }
twins=$(echo "$twins" | sed 's/^ //; s/ /,/g')
echo "dev=$dev group=$group kvm=$kvm nointxmask=$mask disintx_writable=$disintx irqcount=${irqcount:-none} twins=${twins:-none}"

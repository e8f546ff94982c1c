# shellcheck shell=sh
# In L1, right after a restore: load the rig's helper module with the address of a kernel
# variable (kallsyms.sh found it when the snapshot was saved) as its parameter, then unload
# it (it does its work while loading). Prints the module's own line.
# Arguments: module-file param address
set -e
ko=$1 param=$2 addr=$3
name=${ko##*/}
name=${name%.ko}
insmod "$ko" "$param=0x$addr"
rmmod "$name"
dmesg | grep "$name:" | tail -n 1

from pathlib import Path

import pytest

from guest_images.kmods import _deps_in_order, module_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("filename, name", [
    ("vfio-pci.ko.xz", "vfio_pci"), ("kvm_amd.ko", "kvm_amd"), ("vfio-pci-core.ko.zst", "vfio_pci_core"),
])
def test_module_name(filename, name):
    assert module_name(filename) == name


def test_dependencies_are_listed_so_modprobe_loads_deepest_first():
    p = Path("x")
    mods = {
        "vfio_pci": (p, b"", ["vfio_pci_core", "vfio"]),
        "vfio_pci_core": (p, b"", ["vfio", "irqbypass"]),
        "vfio": (p, b"", []),
        "irqbypass": (p, b"", []),
    }
    order = _deps_in_order("vfio_pci", mods)
    # modprobe loads modules.dep's list from the end: every module after its deps.
    load = list(reversed(order))
    assert set(load) == {"vfio", "irqbypass", "vfio_pci_core"}
    assert load.index("vfio") < load.index("vfio_pci_core")
    assert load.index("irqbypass") < load.index("vfio_pci_core")

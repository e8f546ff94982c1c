"""The unfixed vfio module: the patch, and reading the fix state from a module binary."""

import pytest

from guest_images.vfio_module import remove_fix
from rig.core.errors import UserError

pytestmark = pytest.mark.unit

# vfio_intx_enable()/vfio_intx_disable() as in 6.12.95 (after 8b9f128947dd).
FIXED = """\
	vdev->irq_type = VFIO_PCI_INTX_IRQ_INDEX;

	if (!vdev->pci_2_3)
		irq_set_status_flags(pdev->irq, IRQ_DISABLE_UNLAZY);

	ret = request_irq(pdev->irq, vfio_intx_handler,
			  irqflags, ctx->name, ctx);
	if (ret) {
		if (!vdev->pci_2_3)
			irq_clear_status_flags(pdev->irq, IRQ_DISABLE_UNLAZY);
		vdev->irq_type = VFIO_PCI_NUM_IRQS;
	}
	...
		free_irq(pdev->irq, ctx);
		if (!vdev->pci_2_3)
			irq_clear_status_flags(pdev->irq, IRQ_DISABLE_UNLAZY);
		if (ctx->trigger)
"""


def test_patch_removes_exactly_the_fix():
    out = remove_fix(FIXED)
    assert "IRQ_DISABLE_UNLAZY" not in out and "irq_set_status_flags" not in out
    assert out.count("request_irq") == 1 and "free_irq(pdev->irq, ctx);\n\t\tif (ctx->trigger)" in out
    assert "vdev->irq_type = VFIO_PCI_NUM_IRQS;" in out


def test_source_without_the_fix_is_a_clear_error():
    with pytest.raises(UserError, match="fix's lines were not found"):
        remove_fix("static int vfio_intx_enable(void) { return 0; }\n")

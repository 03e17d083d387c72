/* SPDX-License-Identifier: MIT */
/*
 * The config-space model: identity, BAR sizing of every BAR kind, write
 * masks, RW1C status bits, the capability chains, vfio-pci's MSI/MSI-X
 * enable rules, FLR, and the mmap areas computed from the BAR layout.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <linux/pci_regs.h>

#include "internal.h"

static int resets;

static int on_reset(struct vfk_dev *dev, enum vfk_reset_kind kind)
{
	(void)dev;
	assert_int_equal(kind, VFK_RESET_FLR);
	resets++;
	return 0;
}

static const struct vfk_dev_ops ops = { .version = 1, .reset = on_reset };

struct fixture {
	struct vfk_dev *dev;
	struct vfk_shm *shm;
};

static int setup(void **state)
{
	static struct fixture f;
	static const struct vfk_pci_id id = { 0x1234, 0x5678, 0xaaaa, 0xbbbb, 0x010802, 3 };
	uint8_t rom[3000];

	memset(rom, 0x11, sizeof(rom));
	assert_int_equal(vfk_dev_create(&ops, NULL, &f.dev), 0);
	assert_int_equal(vfk_pci_set_id(f.dev, &id), 0);
	assert_int_equal(vfk_shm_create(0x4000, "t", &f.shm), 0);
	assert_int_equal(vfk_dev_set_page_size(f.dev, 4096), 0);
	/* BAR0 32-bit 4K trapped; BAR1+2 64-bit prefetchable 8K in the shm
	 * with 8 trapped bytes at 0x1000; BAR3 I/O 16 bytes; BAR4 a sub-page
	 * 256-byte BAR in the same shm, alone in its page at 0x2000. */
	assert_int_equal(vfk_dev_set_bar(f.dev, 0, &(struct vfk_bar_desc){ .size = 4096 }), 0);
	assert_int_equal(vfk_dev_set_bar(f.dev, 1, &(struct vfk_bar_desc){
		.size = 0x2000, .flags = VFK_BAR_MEM64 | VFK_BAR_PREFETCH,
		.shm = f.shm, .shm_offset = 0,
		.trapped = &(struct vfk_range){ 0x1000, 8 }, .nr_trapped = 1 }), 0);
	assert_int_equal(vfk_dev_set_bar(f.dev, 3, &(struct vfk_bar_desc){
		.size = 16, .flags = VFK_BAR_IO }), 0);
	assert_int_equal(vfk_dev_set_bar(f.dev, 4, &(struct vfk_bar_desc){
		.size = 256, .shm = f.shm, .shm_offset = 0x2000 }), 0);
	assert_int_equal(vfk_dev_set_rom(f.dev, rom, sizeof(rom)), 0);
	assert_int_equal(vfk_pci_add_pm(f.dev), 0);
	assert_int_equal(vfk_pci_add_msi(f.dev, 4, VFK_MSI_64BIT | VFK_MSI_MASKABLE), 0);
	assert_int_equal(vfk_pci_add_msix(f.dev, 8, 0, 0x800, 0, 0xc00), 0);
	assert_int_equal(vfk_pci_add_express(f.dev, VFK_PCIE_ENDPOINT, VFK_PCIE_FLR), 0);
	assert_int_equal(vfk_pci_add_vendor(f.dev, "abc", 3, NULL), 0);
	assert_int_equal(vfk_pci_add_ext_cap(f.dev, PCI_EXT_CAP_ID_DSN, 1, "12345678", 8, NULL), 0);
	assert_int_equal(vfk_pci_add_ext_cap(f.dev, PCI_EXT_CAP_ID_VNDR, 1, "vendor-body-", 12, NULL), 0);
	assert_int_equal(vfk_dev_realize(f.dev), 0);
	resets = 0;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vfk_dev_destroy(f->dev);
	vfk_shm_put(f->shm);
	return 0;
}

static uint32_t rd(struct vfk_dev *d, uint32_t off, unsigned n)
{
	uint32_t v = 0;

	assert_int_equal(vfk_cfg_access(d, false, off, &v, n), 0);
	return v;
}

static void wr(struct vfk_dev *d, uint32_t off, unsigned n, uint32_t v)
{
	assert_int_equal(vfk_cfg_access(d, true, off, &v, n), 0);
}

static void test_identity(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rd(f->dev, PCI_VENDOR_ID, 2), 0x1234);
	assert_int_equal(rd(f->dev, PCI_DEVICE_ID, 2), 0x5678);
	assert_int_equal(rd(f->dev, PCI_CLASS_REVISION, 4), 0x01080203);
	assert_int_equal(rd(f->dev, PCI_SUBSYSTEM_VENDOR_ID, 4), 0xbbbbaaaa);
	assert_int_equal(rd(f->dev, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(f->dev->cfg_size, 4096);
	/* Read-only fields ignore writes, as QEMU expects of any server. */
	wr(f->dev, PCI_VENDOR_ID, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, PCI_VENDOR_ID, 4), 0x56781234);
	/* Out of range is -EFAULT, as vfio-pci answers. */
	{
		uint32_t v;

		assert_int_equal(vfk_cfg_access(f->dev, false, 4094, &v, 4), -EFAULT);
		assert_int_equal(vfk_cfg_access(f->dev, false, 4096, &v, 1), -EFAULT);
	}
}

static void test_bar_sizing(void **state)
{
	struct fixture *f = *state;

	/* Memory 32-bit 4K. */
	wr(f->dev, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, PCI_BASE_ADDRESS_0, 4), 0xfffff000);
	wr(f->dev, PCI_BASE_ADDRESS_0, 4, 0xfebf1234);
	assert_int_equal(rd(f->dev, PCI_BASE_ADDRESS_0, 4), 0xfebf1000);
	/* 64-bit prefetchable 8K: type bits read-only, upper half all ones. */
	wr(f->dev, PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	wr(f->dev, PCI_BASE_ADDRESS_2, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, PCI_BASE_ADDRESS_1, 4),
			 0xffffe000 | PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
	assert_int_equal(rd(f->dev, PCI_BASE_ADDRESS_2, 4), 0xffffffff);
	/* I/O 16 bytes. */
	wr(f->dev, PCI_BASE_ADDRESS_3, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, PCI_BASE_ADDRESS_3, 4), 0xfffffff1);
	/* Sub-page 256-byte memory BAR. */
	wr(f->dev, PCI_BASE_ADDRESS_4, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, PCI_BASE_ADDRESS_4, 4), 0xffffff00);
	/* Absent BAR5 reads 0 whatever is written. */
	wr(f->dev, PCI_BASE_ADDRESS_5, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, PCI_BASE_ADDRESS_5, 4), 0);
	/* ROM of 3000 bytes: a 4K BAR, enable bit kept. */
	wr(f->dev, PCI_ROM_ADDRESS, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, PCI_ROM_ADDRESS, 4), 0xfffff001);
	/* Byte-wise writes work like hardware. */
	wr(f->dev, PCI_BASE_ADDRESS_0 + 3, 1, 0x12);
	assert_int_equal(rd(f->dev, PCI_BASE_ADDRESS_0, 4), 0x12bf1000);
}

static void test_command_status(void **state)
{
	struct fixture *f = *state;

	wr(f->dev, PCI_COMMAND, 2, 0xffff);
	assert_int_equal(rd(f->dev, PCI_COMMAND, 2),
			 PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
				 PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	assert_true(vfk_dev_memory_enabled(f->dev));
	assert_true(vfk_dev_io_enabled(f->dev));
	assert_true(vfk_dev_bus_master(f->dev));
	assert_true(rd(f->dev, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* The device sets an error bit; writing 0 keeps it, 1 clears it. */
	assert_int_equal(vfk_config_set(f->dev, PCI_STATUS, 2,
					rd(f->dev, PCI_STATUS, 2) | PCI_STATUS_REC_MASTER_ABORT), 0);
	wr(f->dev, PCI_STATUS, 2, 0);
	assert_true(rd(f->dev, PCI_STATUS, 2) & PCI_STATUS_REC_MASTER_ABORT);
	wr(f->dev, PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_CAP_LIST);
	assert_false(rd(f->dev, PCI_STATUS, 2) & PCI_STATUS_REC_MASTER_ABORT);
	assert_true(rd(f->dev, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* The model may not open the header to the client. */
	assert_int_equal(vfk_config_set_mask(f->dev, PCI_VENDOR_ID, 2, 0xffff, 0), -EPERM);
}

static void test_cap_chain(void **state)
{
	struct fixture *f = *state;
	uint8_t ids[8];
	unsigned n = 0, off = rd(f->dev, PCI_CAPABILITY_LIST, 1);
	uint32_t h;

	while (off && n < 8) {
		assert_true(off >= 0x40 && off < 0x100 && !(off & 3));
		ids[n++] = (uint8_t)rd(f->dev, off, 1);
		off = rd(f->dev, off + 1, 1);
	}
	assert_int_equal(n, 5);
	assert_int_equal(ids[0], PCI_CAP_ID_PM);
	assert_int_equal(ids[1], PCI_CAP_ID_MSI);
	assert_int_equal(ids[2], PCI_CAP_ID_MSIX);
	assert_int_equal(ids[3], PCI_CAP_ID_EXP);
	assert_int_equal(ids[4], PCI_CAP_ID_VNDR);
	/* Extended: DSN at 0x100, then vendor-specific; chain ends. */
	h = rd(f->dev, 0x100, 4);
	assert_int_equal(h & 0xffff, PCI_EXT_CAP_ID_DSN);
	assert_int_equal((h >> 16) & 0xf, 1);
	assert_int_equal(rd(f->dev, 0x104, 4), 0x34333231);
	h = rd(f->dev, h >> 20, 4);
	assert_int_equal(h & 0xffff, PCI_EXT_CAP_ID_VNDR);
	assert_int_equal(h >> 20, 0);
}

static void test_msi_msix_rules(void **state)
{
	struct fixture *f = *state;
	uint32_t msi = f->dev->msi_off, msix = f->dev->msix_off;

	/* MSI: 4 vectors capable; Enable does not stick without SET_IRQS. */
	assert_int_equal((rd(f->dev, msi + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_QMASK) >> 1, 2);
	wr(f->dev, msi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | (2 << 4));
	assert_false(rd(f->dev, msi + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_ENABLE);
	assert_int_equal((rd(f->dev, msi + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_QSIZE) >> 4, 2);
	wr(f->dev, msi + PCI_MSI_ADDRESS_LO, 4, 0xfee00003);
	assert_int_equal(rd(f->dev, msi + PCI_MSI_ADDRESS_LO, 4), 0xfee00000);
	/* MSI-X: table size, BIR/offsets; Function Mask writable, Enable not. */
	assert_int_equal(rd(f->dev, msix + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, 7);
	assert_int_equal(rd(f->dev, msix + PCI_MSIX_TABLE, 4), 0x800);
	assert_int_equal(rd(f->dev, msix + PCI_MSIX_PBA, 4), 0xc00);
	wr(f->dev, msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	assert_int_equal(rd(f->dev, msix + PCI_MSIX_FLAGS, 2) &
				 (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL),
			 PCI_MSIX_FLAGS_MASKALL);
}

static void test_flr(void **state)
{
	struct fixture *f = *state;
	uint32_t ctl = f->dev->pcie_off + PCI_EXP_DEVCTL;

	assert_true(rd(f->dev, f->dev->pcie_off + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR);
	wr(f->dev, PCI_BASE_ADDRESS_0, 4, 0xfebf0000);
	wr(f->dev, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	wr(f->dev, ctl, 2, rd(f->dev, ctl, 2) | PCI_EXP_DEVCTL_BCR_FLR);
	assert_int_equal(resets, 1);
	/* FLR reads as 0; the function is back at power-on state. */
	assert_false(rd(f->dev, ctl, 2) & PCI_EXP_DEVCTL_BCR_FLR);
	assert_int_equal(rd(f->dev, PCI_BASE_ADDRESS_0, 4), 0);
	assert_int_equal(rd(f->dev, PCI_COMMAND, 2), 0);
	assert_int_equal(rd(f->dev, PCI_VENDOR_ID, 2), 0x1234);
}

static void test_mmap_areas(void **state)
{
	struct fixture *f = *state;
	const struct bar_state *b1 = &f->dev->bars[1], *b4 = &f->dev->bars[4];

	/* BAR1: the trapped 8 bytes at 0x1000 take their whole page. */
	assert_int_equal(b1->nr_areas, 1);
	assert_int_equal(b1->areas[0].offset, 0);
	assert_int_equal(b1->areas[0].size, 0x1000);
	/* BAR4 lives at shm 0x2000, a page no other BAR uses: mappable. */
	assert_int_equal(b4->nr_areas, 1);
	assert_int_equal(b4->areas[0].size, 256);
	/* No areas for trapped-only BARs, I/O BARs, or the MSI-X BAR0 pages. */
	assert_int_equal(f->dev->bars[0].nr_areas, 0);
	assert_int_equal(f->dev->bars[3].nr_areas, 0);
}

static void test_set_after_realize(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(vfk_pci_add_pm(f->dev), -EEXIST);
	assert_int_equal(vfk_pci_add_vendor(f->dev, "x", 1, NULL), -EBUSY);
	assert_int_equal(vfk_dev_set_bar(f->dev, 5, &(struct vfk_bar_desc){ .size = 4096 }), -EBUSY);
}

static void test_bad_descriptions(void **state)
{
	struct vfk_dev *d;
	struct vfk_shm *shm;

	(void)state;
	assert_int_equal(vfk_dev_create(NULL, NULL, &d), 0);
	assert_int_equal(vfk_shm_create(4096, NULL, &shm), 0);
	assert_int_equal(vfk_dev_set_bar(d, 0, &(struct vfk_bar_desc){ .size = 3000 }), -EINVAL);
	assert_int_equal(vfk_dev_set_bar(d, 0, &(struct vfk_bar_desc){ .size = 8 }), -EINVAL);
	assert_int_equal(vfk_dev_set_bar(d, 5, &(struct vfk_bar_desc){
		.size = 4096, .flags = VFK_BAR_MEM64 }), -EINVAL);
	assert_int_equal(vfk_dev_set_bar(d, 0, &(struct vfk_bar_desc){
		.size = 512, .flags = VFK_BAR_IO }), -EINVAL);
	assert_int_equal(vfk_dev_set_bar(d, 0, &(struct vfk_bar_desc){
		.size = 8192, .shm = shm }), -EINVAL); /* larger than the shm */
	assert_int_equal(vfk_dev_set_bar(d, 0, &(struct vfk_bar_desc){
		.size = 4096, .trapped = &(struct vfk_range){ 4000, 200 }, .nr_trapped = 1 }),
			 -EINVAL);
	assert_int_equal(vfk_dev_set_bar(d, 0, &(struct vfk_bar_desc){
		.size = 4096, .flags = VFK_BAR_MEM64 }), 0);
	assert_int_equal(vfk_dev_set_bar(d, 1, &(struct vfk_bar_desc){ .size = 4096 }), -EEXIST);
	assert_int_equal(vfk_pci_add_msi(d, 3, 0), -EINVAL);
	assert_int_equal(vfk_pci_add_msix(d, 0, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(vfk_pci_add_ext_cap(d, 1, 1, NULL, 0, NULL), -EINVAL); /* no PCIe */
	/* MSI-X table outside its BAR is caught at realize. */
	assert_int_equal(vfk_pci_add_msix(d, 4, 0, 0xff8, 0, 0x800), 0);
	assert_int_equal(vfk_dev_realize(d), -EINVAL);
	assert_int_equal(vfk_dev_set_page_size(d, 8192), -EINVAL);
	vfk_dev_destroy(d);
	vfk_shm_put(shm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msi_msix_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmap_areas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_after_realize, setup, teardown),
		cmocka_unit_test(test_bad_descriptions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

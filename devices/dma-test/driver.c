/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "dma_test.h"
#include "driver.h"

int dma_test_read32(struct vfk_device *dev, uint32_t reg, uint32_t *val)
{
	return vfk_region_read(dev, 0, reg, val, 4);
}

int dma_test_write32(struct vfk_device *dev, uint32_t reg, uint32_t val)
{
	return vfk_region_write(dev, 0, reg, &val, 4);
}

int dma_test_write64(struct vfk_device *dev, uint32_t reg, uint64_t val)
{
	return vfk_region_write(dev, 0, reg, &val, 8);
}

int dma_test_enable(struct vfk_device *dev)
{
	uint16_t cmd;
	int rc = vfk_device_config_read(dev, PCI_COMMAND, &cmd, 2);

	if (rc)
		return rc;
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER;
	return vfk_device_config_write(dev, PCI_COMMAND, &cmd, 2);
}

int dma_test_start(struct vfk_device *dev, uint64_t src, uint64_t dst,
		   uint32_t len, uint32_t ctrl)
{
	int rc;

	if ((rc = dma_test_write64(dev, DMA_TEST_REG_SRC, src)) ||
	    (rc = dma_test_write64(dev, DMA_TEST_REG_DST, dst)) ||
	    (rc = dma_test_write32(dev, DMA_TEST_REG_LEN, len)) ||
	    (rc = dma_test_write32(dev, DMA_TEST_REG_CTRL, ctrl)))
		return rc;
	return dma_test_write32(dev, DMA_TEST_REG_DOORBELL, 1);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int dma_test_wait_irq(struct vfk_device *dev, int efd, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p[2] = { { efd, POLLIN, 0 }, { vfk_device_fd(dev), POLLIN, 0 } };
		int64_t left = deadline - now_ms();
		int n;

		if (left < 0)
			return -ETIMEDOUT;
		n = poll(p, 2, (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0 && (p[1].revents & (POLLIN | POLLHUP))) {
			int rc = vfk_device_dispatch(dev);

			if (rc)
				return rc;
		}
		if (n > 0 && (p[0].revents & POLLIN)) {
			uint64_t v;

			if (read(efd, &v, sizeof(v)) == sizeof(v))
				return 0;
		}
	}
}

int dma_test_wait_idle(struct vfk_device *dev, int timeout_ms, uint32_t *status)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		int rc = dma_test_read32(dev, DMA_TEST_REG_STATUS, status);

		if (rc)
			return rc;
		if (!(*status & DMA_TEST_STATUS_BUSY))
			return 0;
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		rc = vfk_device_dispatch(dev);
		if (rc)
			return rc;
		usleep(100);
	}
}

/* SPDX-License-Identifier: MIT */
/*
 * Interrupts: the IRQ indexes a client configures with SET_IRQS, and the
 * device-side state behind them.
 *
 * The model is Linux vfio-pci's, seen from the device: binding an eventfd to
 * an MSI or MSI-X vector is what the host kernel's request_irq() would do to
 * real hardware, so it unmasks that vector in the (emulated) table, and
 * unbinding masks it again.  A client that drives the MSI-X table through
 * the BAR (a userspace driver, or a VMM that forwards guest table writes)
 * then gets hardware semantics on top: vector and function masks hold
 * interrupts back as pending bits in the PBA, and unmasking delivers them.
 * A VMM that emulates the table itself (QEMU does) never writes ours, so
 * its bound vectors simply fire.
 *
 * Only one of INTx, MSI and MSI-X is enabled at a time, as in vfio-pci.
 * Everything here runs under irq_lock, because device threads trigger
 * interrupts while the server thread changes the set-up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "internal.h"

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (fd >= 0) {
		/* An eventfd write fails only if the counter would overflow,
		 * and then the interrupt is pending anyway. */
		ssize_t n = write(fd, &one, sizeof(one));

		(void)n;
	}
}

static unsigned index_count(struct vfk_dev *dev, unsigned index)
{
	switch (index) {
	case VFK_PCI_INTX:
		return dev->intx_pin ? 1 : 0;
	case VFK_PCI_MSI:
		return dev->msi_nvec;
	case VFK_PCI_MSIX:
		return dev->msix_nvec;
	case VFK_PCI_ERR:
		return dev->pcie_off ? 1 : 0;
	case VFK_PCI_REQ:
		return 1;
	}
	return 0;
}

int vfk_irq_init(struct vfk_dev *dev)
{
	for (unsigned i = 0; i < VFK_PCI_NUM_IRQS; i++) {
		struct irq_index *ix = &dev->irqs[i];

		ix->count = index_count(dev, i);
		if (!ix->count)
			continue;
		ix->trigger = malloc(ix->count * sizeof(int));
		ix->client_mask = calloc(ix->count, 1);
		if (!ix->trigger || !ix->client_mask) {
			/* Half-made: fini must find neither (it would close
			 * the uninitialised trigger slots). */
			free(ix->trigger);
			free(ix->client_mask);
			ix->trigger = NULL;
			ix->client_mask = NULL;
			return -ENOMEM;
		}
		for (unsigned v = 0; v < ix->count; v++)
			ix->trigger[v] = -1;
	}
	vfk_irq_reset(dev);
	return 0;
}

static void unbind_all(struct irq_index *ix)
{
	for (unsigned v = 0; v < ix->count; v++) {
		if (ix->trigger[v] >= 0)
			close(ix->trigger[v]);
		ix->trigger[v] = -1;
		ix->client_mask[v] = 0;
	}
}

void vfk_irq_fini(struct vfk_dev *dev)
{
	for (unsigned i = 0; i < VFK_PCI_NUM_IRQS; i++) {
		struct irq_index *ix = &dev->irqs[i];

		if (ix->trigger)
			unbind_all(ix);
		free(ix->trigger);
		free(ix->client_mask);
		ix->trigger = NULL;
		ix->client_mask = NULL;
	}
	if (dev->intx_unmask_fd >= 0)
		close(dev->intx_unmask_fd);
	dev->intx_unmask_fd = -1;
}

/* ---- MSI-X table ---- */

static uint8_t *msix_entry(struct vfk_dev *dev, unsigned v)
{
	return dev->msix_table + (size_t)v * PCI_MSIX_ENTRY_SIZE;
}

static bool msix_vector_masked(struct vfk_dev *dev, unsigned v)
{
	uint16_t ctl = cfg_get16(dev, dev->msix_off + PCI_MSIX_FLAGS);

	return (ctl & PCI_MSIX_FLAGS_MASKALL) ||
	       (msix_entry(dev, v)[PCI_MSIX_ENTRY_VECTOR_CTRL] &
		PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static void msix_set_mask(struct vfk_dev *dev, unsigned v, bool masked)
{
	uint8_t *c = &msix_entry(dev, v)[PCI_MSIX_ENTRY_VECTOR_CTRL];

	*c = (uint8_t)(masked ? (*c | PCI_MSIX_ENTRY_CTRL_MASKBIT)
			      : (*c & ~PCI_MSIX_ENTRY_CTRL_MASKBIT));
}

static bool pba_test(struct vfk_dev *dev, unsigned v)
{
	return dev->msix_pba[v / 64] & (1ull << (v % 64));
}

static void pba_set(struct vfk_dev *dev, unsigned v, bool on)
{
	if (on)
		dev->msix_pba[v / 64] |= 1ull << (v % 64);
	else
		dev->msix_pba[v / 64] &= ~(1ull << (v % 64));
}

/* Deliver what became deliverable: called after any unmask. */
static void msix_flush_pending(struct vfk_dev *dev)
{
	struct irq_index *ix = &dev->irqs[VFK_PCI_MSIX];

	if (dev->irq_active != VFK_PCI_MSIX)
		return;
	for (unsigned v = 0; v < dev->msix_nvec; v++) {
		if (pba_test(dev, v) && !msix_vector_masked(dev, v) &&
		    ix->trigger[v] >= 0) {
			pba_set(dev, v, false);
			signal_fd(ix->trigger[v]);
		}
	}
}

int vfk_msix_access(struct vfk_dev *dev, bool write, bool pba, uint64_t off,
		    void *buf, uint32_t count)
{
	uint8_t *b = buf;

	pthread_mutex_lock(&dev->irq_lock);
	if (pba) {
		/* Pending bits are read-only; writes are ignored (PCI spec). */
		if (!write) {
			for (uint32_t i = 0; i < count; i++) {
				uint64_t byte = off + i;

				b[i] = (uint8_t)(dev->msix_pba[byte / 8] >>
						 (8 * (byte % 8)));
			}
		}
	} else if (write) {
		memcpy(dev->msix_table + off, buf, count);
		/* Reserved vector-control bits read as zero. */
		for (uint64_t e = off / 16; e <= (off + count - 1) / 16; e++) {
			uint8_t *ctl = msix_entry(dev, (unsigned)e) +
				       PCI_MSIX_ENTRY_VECTOR_CTRL;

			ctl[0] &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
			ctl[1] = ctl[2] = ctl[3] = 0;
		}
		msix_flush_pending(dev);
	} else {
		memcpy(buf, dev->msix_table + off, count);
	}
	pthread_mutex_unlock(&dev->irq_lock);
	return 0;
}

void vfk_msix_control_written(struct vfk_dev *dev)
{
	pthread_mutex_lock(&dev->irq_lock);
	msix_flush_pending(dev);
	pthread_mutex_unlock(&dev->irq_lock);
}

/* ---- MSI ---- */

static uint32_t msi_mask_off(struct vfk_dev *dev)
{
	return dev->msi_off + ((dev->msi_flags & VFK_MSI_64BIT) ? PCI_MSI_MASK_64
								: PCI_MSI_MASK_32);
}

static bool msi_vector_masked(struct vfk_dev *dev, unsigned v)
{
	if (dev->irqs[VFK_PCI_MSI].client_mask[v])
		return true;
	if (!(dev->msi_flags & VFK_MSI_MASKABLE))
		return false;
	return cfg_get32(dev, msi_mask_off(dev)) & (1u << v);
}

/* MSI pending bits live in the capability when it has them. */
static void msi_set_pending(struct vfk_dev *dev, unsigned v, bool on)
{
	if (dev->msi_flags & VFK_MSI_MASKABLE) {
		uint32_t po = msi_mask_off(dev) + 4;
		uint32_t p = cfg_get32(dev, po);

		put32(dev->cfg + po, on ? p | (1u << v) : p & ~(1u << v));
	}
	dev->msi_pending = on ? dev->msi_pending | (1u << v)
			      : dev->msi_pending & ~(1u << v);
}

static void msi_flush_pending(struct vfk_dev *dev)
{
	struct irq_index *ix = &dev->irqs[VFK_PCI_MSI];

	if (dev->irq_active != VFK_PCI_MSI)
		return;
	for (unsigned v = 0; v < dev->msi_nvec; v++) {
		if ((dev->msi_pending & (1u << v)) && !msi_vector_masked(dev, v) &&
		    ix->trigger[v] >= 0) {
			msi_set_pending(dev, v, false);
			signal_fd(ix->trigger[v]);
		}
	}
}

void vfk_msi_config_written(struct vfk_dev *dev)
{
	uint32_t fo = dev->msi_off + PCI_MSI_FLAGS;

	pthread_mutex_lock(&dev->irq_lock);
	/* As vfio-pci: Enable sticks only while MSI is enabled by SET_IRQS. */
	if (dev->irq_active != VFK_PCI_MSI)
		put16(dev->cfg + fo, cfg_get16(dev, fo) & ~PCI_MSI_FLAGS_ENABLE);
	msi_flush_pending(dev);
	pthread_mutex_unlock(&dev->irq_lock);
}

/* ---- INTx ---- */

static bool intx_disabled(struct vfk_dev *dev)
{
	return cfg_get16(dev, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
}

/* Fire INTx if it is asserted, enabled and unmasked; then automask. */
static void intx_eval(struct vfk_dev *dev)
{
	int fd = dev->irqs[VFK_PCI_INTX].count ? dev->irqs[VFK_PCI_INTX].trigger[0] : -1;

	if (dev->irq_active != VFK_PCI_INTX || !dev->intx_asserted ||
	    dev->intx_masked || intx_disabled(dev))
		return;
	dev->intx_masked = true;
	signal_fd(fd);
}

static void intx_set_status(struct vfk_dev *dev)
{
	atomic_store(&dev->intx_status, dev->intx_asserted);
}

int vfk_intx_set(struct vfk_dev *dev, bool asserted)
{
	if (!dev->intx_pin)
		return -ENOENT;
	pthread_mutex_lock(&dev->irq_lock);
	dev->intx_asserted = asserted;
	intx_set_status(dev);
	intx_eval(dev);
	pthread_mutex_unlock(&dev->irq_lock);
	return 0;
}

void vfk_intx_command_written(struct vfk_dev *dev)
{
	pthread_mutex_lock(&dev->irq_lock);
	intx_eval(dev);
	pthread_mutex_unlock(&dev->irq_lock);
}

void vfk_intx_unmask(struct vfk_dev *dev)
{
	pthread_mutex_lock(&dev->irq_lock);
	dev->intx_masked = false;
	intx_eval(dev);
	pthread_mutex_unlock(&dev->irq_lock);
}

int vfk_irq_unmask_fd(struct vfk_dev *dev, unsigned *gen)
{
	*gen = dev->intx_unmask_gen;
	return dev->intx_unmask_fd;
}

/* ---- device-side triggers ---- */

static int trigger_locked(struct vfk_dev *dev, unsigned index, unsigned v)
{
	struct irq_index *ix;

	if (index >= VFK_PCI_NUM_IRQS)
		return -EINVAL;
	ix = &dev->irqs[index];
	if (v >= ix->count)
		return -EINVAL;
	switch (index) {
	case VFK_PCI_INTX:
		dev->intx_asserted = true;
		intx_set_status(dev);
		intx_eval(dev);
		return dev->irq_active == VFK_PCI_INTX ? 0 : -ENOENT;
	case VFK_PCI_MSI:
		if (dev->irq_active != VFK_PCI_MSI || ix->trigger[v] < 0)
			return -ENOENT;
		if (msi_vector_masked(dev, v))
			msi_set_pending(dev, v, true);
		else
			signal_fd(ix->trigger[v]);
		return 0;
	case VFK_PCI_MSIX:
		if (dev->irq_active != VFK_PCI_MSIX || ix->trigger[v] < 0)
			return -ENOENT;
		if (msix_vector_masked(dev, v))
			pba_set(dev, v, true);
		else
			signal_fd(ix->trigger[v]);
		return 0;
	default:
		if (ix->trigger[v] < 0)
			return -ENOENT;
		signal_fd(ix->trigger[v]);
		return 0;
	}
}

int vfk_irq_trigger(struct vfk_dev *dev, unsigned index, unsigned vector)
{
	int rc;

	pthread_mutex_lock(&dev->irq_lock);
	rc = trigger_locked(dev, index, vector);
	pthread_mutex_unlock(&dev->irq_lock);
	return rc;
}

int vfk_irq_raise(struct vfk_dev *dev, unsigned vector)
{
	int rc = -ENOENT;
	unsigned n;

	pthread_mutex_lock(&dev->irq_lock);
	switch (dev->irq_active) {
	case VFK_PCI_MSIX:
		rc = vector < dev->msix_nvec ? trigger_locked(dev, VFK_PCI_MSIX, vector)
					     : -EINVAL;
		break;
	case VFK_PCI_MSI:
		/* The vectors the guest enabled: Multiple Message Enable. */
		n = 1u << ((cfg_get16(dev, dev->msi_off + PCI_MSI_FLAGS) &
			    PCI_MSI_FLAGS_QSIZE) >> 4);
		if (n > dev->msi_nvec)
			n = dev->msi_nvec;
		rc = trigger_locked(dev, VFK_PCI_MSI, vector < n ? vector : n - 1);
		break;
	case VFK_PCI_INTX:
		rc = trigger_locked(dev, VFK_PCI_INTX, 0);
		break;
	}
	pthread_mutex_unlock(&dev->irq_lock);
	return rc;
}

int vfk_dev_report_error(struct vfk_dev *dev)
{
	int rc = vfk_irq_trigger(dev, VFK_PCI_ERR, 0);

	if (rc == 0)
		vfk_dev_log(dev, VFK_LOG_WARN, "uncorrectable device error reported (ERR)");
	return rc == -EINVAL ? -ENOENT : rc;
}

int vfk_irq_eventfd(struct vfk_dev *dev, unsigned index, unsigned vector)
{
	int fd = -1;

	pthread_mutex_lock(&dev->irq_lock);
	if (index < VFK_PCI_NUM_IRQS && vector < dev->irqs[index].count)
		fd = dev->irqs[index].trigger[vector];
	pthread_mutex_unlock(&dev->irq_lock);
	return fd;
}

int vfk_irq_active(struct vfk_dev *dev)
{
	int a;

	pthread_mutex_lock(&dev->irq_lock);
	a = dev->irq_active;
	pthread_mutex_unlock(&dev->irq_lock);
	return a;
}

/* ---- client side: GET_IRQ_INFO / SET_IRQS ---- */

void vfk_irq_info(struct vfk_dev *dev, unsigned index, uint32_t *flags,
		  uint32_t *count)
{
	*count = dev->irqs[index].count;
	*flags = VFK_IRQ_INFO_EVENTFD;
	switch (index) {
	case VFK_PCI_INTX:
		*flags |= VFK_IRQ_INFO_MASKABLE | VFK_IRQ_INFO_AUTOMASKED;
		break;
	case VFK_PCI_MSI:
		/* SET_IRQS MASK/UNMASK work per vector (vfio-pci has -ENOTTY),
		 * and the vector count is fixed once enabled. */
		*flags |= VFK_IRQ_INFO_MASKABLE | VFK_IRQ_INFO_NORESIZE;
		break;
	case VFK_PCI_MSIX:
		/* Vectors can be bound one by one while enabled (like
		 * vfio-pci with dynamic MSI-X): no NORESIZE. */
		*flags |= VFK_IRQ_INFO_MASKABLE;
		break;
	}
}

/* Enable-state side effects visible in config space. */
static void set_active(struct vfk_dev *dev, int index)
{
	dev->irq_active = index;
	if (dev->msix_off) {
		uint32_t fo = dev->msix_off + PCI_MSIX_FLAGS;
		uint16_t f = cfg_get16(dev, fo);

		f = index == VFK_PCI_MSIX ? (f | PCI_MSIX_FLAGS_ENABLE)
					  : (f & ~PCI_MSIX_FLAGS_ENABLE);
		put16(dev->cfg + fo, f);
	}
	if (dev->msi_off && index != VFK_PCI_MSI) {
		uint32_t fo = dev->msi_off + PCI_MSI_FLAGS;

		put16(dev->cfg + fo, cfg_get16(dev, fo) & ~PCI_MSI_FLAGS_ENABLE);
	}
}

static void disable_index(struct vfk_dev *dev, unsigned index)
{
	struct irq_index *ix = &dev->irqs[index];

	if (index == VFK_PCI_MSIX)
		for (unsigned v = 0; v < ix->count; v++)
			if (ix->trigger[v] >= 0)
				msix_set_mask(dev, v, true);
	unbind_all(ix);
	if (dev->irq_active == (int)index)
		set_active(dev, -1);
	if (index == VFK_PCI_INTX) {
		/* QEMU never clears the unmask (resample) eventfd itself; it
		 * goes with INTx. */
		dev->intx_masked = false;
		if (dev->intx_unmask_fd >= 0)
			close(dev->intx_unmask_fd);
		dev->intx_unmask_fd = -1;
		dev->intx_unmask_gen++;
	}
}

/* Bind (fds) or unbind (nfds == 0) vectors [start, start+count). */
static int bind_eventfds(struct vfk_dev *dev, unsigned index, uint32_t start,
			 uint32_t count, const int *fds, unsigned nfds)
{
	struct irq_index *ix = &dev->irqs[index];

	if (index <= VFK_PCI_MSIX && dev->irq_active >= 0 &&
	    dev->irq_active != (int)index)
		return -EINVAL; /* disable the other type first (vfio-pci) */
	for (uint32_t i = 0; i < count; i++) {
		unsigned v = start + i;

		if (ix->trigger[v] >= 0)
			close(ix->trigger[v]);
		ix->trigger[v] = nfds ? fds[i] : -1;
		if (index == VFK_PCI_MSIX)
			msix_set_mask(dev, v, !nfds);
		if (index == VFK_PCI_MSI && (dev->msi_flags & VFK_MSI_MASKABLE)) {
			uint32_t mo = msi_mask_off(dev);
			uint32_t m = cfg_get32(dev, mo);

			put32(dev->cfg + mo, nfds ? m & ~(1u << v) : m | (1u << v));
		}
	}
	/* TRIGGER|EVENTFD enables the type even with no fd: QEMU enables
	 * MSI-X that way before it binds any vector. */
	if (index <= VFK_PCI_MSIX) {
		if (dev->irq_active != (int)index)
			set_active(dev, (int)index);
		if (index == VFK_PCI_MSI && nfds) {
			uint32_t fo = dev->msi_off + PCI_MSI_FLAGS;
			uint16_t f = cfg_get16(dev, fo) | PCI_MSI_FLAGS_ENABLE;
			unsigned log2n = 0;

			while ((1u << log2n) < start + count)
				log2n++;
			if ((unsigned)((f & PCI_MSI_FLAGS_QSIZE) >> 4) < log2n)
				f = (uint16_t)((f & ~PCI_MSI_FLAGS_QSIZE) | (log2n << 4));
			put16(dev->cfg + fo, f);
		}
	}
	if (index == VFK_PCI_INTX)
		intx_eval(dev);
	return 0;
}

static void mask_vectors(struct vfk_dev *dev, unsigned index, uint32_t start,
			 uint32_t count, const uint8_t *bools, bool mask)
{
	for (uint32_t i = 0; i < count; i++) {
		unsigned v = start + i;

		if (bools && !bools[i])
			continue;
		if (index == VFK_PCI_MSIX)
			msix_set_mask(dev, v, mask);
		else
			dev->irqs[index].client_mask[v] = mask;
	}
	if (index == VFK_PCI_MSIX)
		msix_flush_pending(dev);
	else
		msi_flush_pending(dev);
}

static int set_irqs_locked(struct vfk_dev *dev, const struct vfk_irq_set *s,
			   const int *fds, unsigned nfds, bool *consumed)
{
	unsigned index = s->w.index;
	struct irq_index *ix;
	uint32_t start = s->w.start, count = s->w.count;

	if (index >= VFK_PCI_NUM_IRQS)
		return -EINVAL;
	ix = &dev->irqs[index];
	if (ix->count == 0)
		return -EINVAL;
	if (count == 0) { /* DATA_NONE | TRIGGER, start 0: disable */
		disable_index(dev, index);
		return 0;
	}
	if (start >= ix->count || count > ix->count - start)
		return -EINVAL;

	switch (s->action) {
	case VFK_IRQ_SET_ACTION_TRIGGER:
		if (s->data == VFK_IRQ_SET_DATA_EVENTFD) {
			int rc = bind_eventfds(dev, index, start, count, fds, nfds);

			if (!rc)
				*consumed = true;
			return rc;
		}
		/* NONE or BOOL: the client fires the vectors (loopback). */
		for (uint32_t i = 0; i < count; i++) {
			if (s->bools && !s->bools[i])
				continue;
			if (index == VFK_PCI_INTX)
				intx_eval(dev);
			else if (ix->trigger[start + i] >= 0)
				signal_fd(ix->trigger[start + i]);
		}
		return 0;
	case VFK_IRQ_SET_ACTION_MASK:
	case VFK_IRQ_SET_ACTION_UNMASK:
		if (index >= VFK_PCI_ERR)
			return -EINVAL;
		if (index != VFK_PCI_INTX && s->data == VFK_IRQ_SET_DATA_EVENTFD)
			return -ENOTTY; /* as vfio-pci */
		/* Only the active type has vectors to mask: vfio-pci answers
		 * EINVAL for INTx masking while INTx is not enabled, and
		 * vfiokit's MSI/MSI-X masking follows the same rule. */
		if (dev->irq_active != (int)index)
			return -EINVAL;
		if (index == VFK_PCI_INTX) {
			if (s->data == VFK_IRQ_SET_DATA_EVENTFD) {
				/* An unmask eventfd (vfio-pci's resampler):
				 * the client signals it to unmask. */
				if (s->action == VFK_IRQ_SET_ACTION_MASK)
					return -ENOTTY;
				if (dev->intx_unmask_fd >= 0)
					close(dev->intx_unmask_fd);
				dev->intx_unmask_fd = nfds ? fds[0] : -1;
				dev->intx_unmask_gen++;
				*consumed = nfds != 0;
				return 0;
			}
			if (s->bools && !s->bools[0])
				return 0;
			dev->intx_masked = s->action == VFK_IRQ_SET_ACTION_MASK;
			intx_eval(dev);
			return 0;
		}
		mask_vectors(dev, index, start, count, s->bools,
			     s->action == VFK_IRQ_SET_ACTION_MASK);
		return 0;
	}
	return -EINVAL;
}

/* Linux names an eventfd's file "anon_inode:[eventfd]".  Without /proc
 * (a bare chroot) the check cannot be made and the fd is trusted. */
static bool is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT && access("/proc/self", F_OK) != 0;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/*
 * Apply a decoded SET_IRQS.  On success the fds are the device's; on error
 * they are still the caller's.
 */
int vfk_irq_set(struct vfk_dev *dev, const struct vfk_irq_set *s,
		const int *fds, unsigned nfds)
{
	bool consumed = false;
	int rc;

	/* An fd that is not an eventfd would make delivery write to, say,
	 * a pipe or a socket: refuse it up front. */
	for (unsigned i = 0; i < nfds; i++)
		if (!is_eventfd(fds[i]))
			return -EINVAL;
	pthread_mutex_lock(&dev->irq_lock);
	rc = set_irqs_locked(dev, s, fds, nfds, &consumed);
	pthread_mutex_unlock(&dev->irq_lock);
	if (!rc && nfds && !consumed)
		return -EINVAL; /* fds the action does not use */
	if (!rc && dev->ops->irq_changed)
		dev->ops->irq_changed(dev, s->w.index);
	return rc;
}

void vfk_irq_disconnect(struct vfk_dev *dev)
{
	pthread_mutex_lock(&dev->irq_lock);
	for (unsigned i = 0; i < VFK_PCI_NUM_IRQS; i++)
		if (dev->irqs[i].count)
			disable_index(dev, i);
	set_active(dev, -1);
	if (dev->intx_unmask_fd >= 0)
		close(dev->intx_unmask_fd);
	dev->intx_unmask_fd = -1;
	dev->intx_unmask_gen++;
	pthread_mutex_unlock(&dev->irq_lock);
}

/* Device reset: the interrupt sources go to power-on state, but the
 * client's eventfd bindings stay (VFIO_DEVICE_RESET does not tear down the
 * IRQ set-up either), and bound vectors stay unmasked as the host kernel
 * would re-program them. */
void vfk_irq_reset(struct vfk_dev *dev)
{
	pthread_mutex_lock(&dev->irq_lock);
	dev->intx_asserted = false;
	dev->intx_masked = false;
	dev->msi_pending = 0;
	if (dev->msix_nvec) {
		struct irq_index *ix = &dev->irqs[VFK_PCI_MSIX];

		memset(dev->msix_table, 0, (size_t)dev->msix_nvec * PCI_MSIX_ENTRY_SIZE);
		memset(dev->msix_pba, 0, ((dev->msix_nvec + 63) / 64) * 8);
		for (unsigned v = 0; v < dev->msix_nvec; v++)
			msix_set_mask(dev, v, !ix->trigger || ix->trigger[v] < 0);
	}
	if (dev->realized || dev->irqs[VFK_PCI_INTX].trigger)
		set_active(dev, dev->irq_active);
	pthread_mutex_unlock(&dev->irq_lock);
}

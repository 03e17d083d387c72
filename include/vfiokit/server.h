/* SPDX-License-Identifier: MIT */
/*
 * vfiokit/server.h: the device side.  A device model describes a PCI
 * function (identity, BARs, capabilities) on a `struct vfk_dev`, fills a
 * `struct vfk_dev_ops` with what differs from the defaults, and hands the
 * device to a `struct vfk_server`, which speaks vfio-user to one client at a
 * time.  The library owns config space, BAR sizing, MSI-X/MSI/INTx, the DMA
 * table and the protocol; the model owns its registers and behaviour.
 *
 * Conventions (see common.h): 0 or a negative errno; opaque handles; a
 * `void *user` per device; silent unless a log callback is set.
 *
 * Threads.  Everything runs on the thread that calls vfk_server_dispatch()
 * or vfk_server_run() (the "server thread") unless a comment says a call
 * is thread-safe.  Callbacks are made on the server thread, one at a time,
 * and must not block: a model that needs to wait or to do heavy work hands
 * it to its own thread, or to a watched fd (vfk_server_watch()).
 *
 * Lifetimes.  vfk_server_destroy() before vfk_dev_destroy().  Memory the
 * library hands out (vfk_shm_ptr(), DMA host pointers) stays valid for the
 * lifetime stated at each function.
 */
#ifndef VFIOKIT_SERVER_H
#define VFIOKIT_SERVER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct vfk_dev;
struct vfk_server;
struct vfk_shm;

/* ---- Shared memory ------------------------------------------------------ */

/*
 * Shared memory a client may mmap: a sealed memfd mapped in this process.
 * Used to back BARs (and, in later versions, other regions).  Reference
 * counted: each BAR that uses it holds a reference, and the creator holds
 * one until vfk_shm_put().
 */
/* Create `size` bytes (rounded up to the host page size), zero-filled.
 * `name` shows in /proc/PID/fd and may be NULL. */
int vfk_shm_create(size_t size, const char *name, struct vfk_shm **out);
/* Wrap an fd the caller opened (a file, a memfd, a block or DAX device);
 * the shm maps [0, size) of it shared and takes ownership of `fd` on
 * success.  -EINVAL if a regular file or a block device is shorter than
 * `size`. */
int vfk_shm_from_fd(int fd, size_t size, struct vfk_shm **out);
/*
 * As vfk_shm_from_fd(), for bytes [file_offset, file_offset + size) of
 * the fd (page-aligned offset): byte 0 of the shm is that file offset,
 * and clients are told to mmap the fd at file_offset + the BAR's offset.
 * For a VFIO device fd, whose regions sit at large offsets.  With
 * `borrow`, the fd stays the caller's and must outlive the shm.
 */
int vfk_shm_from_fd_range(int fd, uint64_t file_offset, size_t size,
			  bool borrow, struct vfk_shm **out);
/* Host address of byte 0.  Valid until the last reference goes. */
void *vfk_shm_ptr(const struct vfk_shm *shm);
/* Size in bytes (as rounded at creation). */
size_t vfk_shm_size(const struct vfk_shm *shm);
/* Drop the caller's reference. */
void vfk_shm_put(struct vfk_shm *shm);

/* ---- Device model callbacks --------------------------------------------- */

/* Why a device is being reset. */
enum vfk_reset_kind {
	VFK_RESET_CLIENT = 1, /* DEVICE_RESET message (VFIO_DEVICE_RESET) */
	VFK_RESET_FLR = 2,    /* function-level reset written in config space */
	VFK_RESET_RELEASE = 3, /* the client left (vfk_server_opts'
				* keep_state_on_disconnect) */
};

/* A window of client memory the device may reach by DMA. */
struct vfk_dma_window {
	uint64_t iova;  /* first byte */
	uint64_t size;  /* bytes, > 0 */
	uint32_t prot;  /* VFK_PROT_READ | VFK_PROT_WRITE: what the device may do */
	void *host;     /* mapped in this process, or NULL: reached by messages */
};
#define VFK_PROT_READ 1u
#define VFK_PROT_WRITE 2u

#define VFK_DEV_OPS_VERSION 1

/*
 * What a device model implements.  Every member may be NULL; the comment
 * says what the library does then.  Members are only ever appended; a model
 * sets `version` to the VFK_DEV_OPS_VERSION it was written against.
 */
struct vfk_dev_ops {
	unsigned version; /* VFK_DEV_OPS_VERSION the model was built with */
	const char *name; /* short model name, shown by `vfiokit info` */

	/*
	 * Access to a BAR range that is not served from shared memory (the
	 * trapped ranges, or the whole BAR when it has no shm).  `offset` is
	 * from the BAR start, [offset, offset+count) lies inside the BAR and
	 * outside the MSI-X table and PBA (the library serves those).  The
	 * access arrives as the client issued it (usually 1, 2, 4 or 8 bytes,
	 * little-endian).  Return 0, or a negative errno sent to the client.
	 * bar_read's `buf` starts zeroed: bytes the model leaves read as 0.
	 * NULL: reads return zeros, writes are dropped.
	 */
	int (*bar_read)(struct vfk_dev *dev, unsigned bar, uint64_t offset,
			void *buf, uint32_t count);
	int (*bar_write)(struct vfk_dev *dev, unsigned bar, uint64_t offset,
			 const void *buf, uint32_t count);

	/*
	 * Called after a client write changed config bytes [offset,
	 * offset+count); the library has applied the write masks already,
	 * so vfk_config_read() shows the new value.  NULL: nothing.
	 */
	void (*config_written)(struct vfk_dev *dev, uint32_t offset,
			       uint32_t count);

	/*
	 * Reset the model's own state.  The library has already restored
	 * config space, the MSI-X table and interrupt masks to their reset
	 * values; DMA windows and IRQ eventfds stay.  NULL: nothing more.
	 * A negative return is reported to the client (DEVICE_RESET).
	 */
	int (*reset)(struct vfk_dev *dev, enum vfk_reset_kind kind);

	/*
	 * A DMA window was added, or is about to be removed.  dma_map may
	 * refuse the window (a negative errno, sent to the client; the window
	 * is not added), e.g. a passthrough model that cannot give a window
	 * without fd to an IOMMU.  When dma_unmap returns, the model must hold
	 * no host pointer into the window and have no DMA to it in flight (the
	 * client may reuse the memory as soon as it gets the reply).  NULL:
	 * nothing.
	 */
	int (*dma_map)(struct vfk_dev *dev, const struct vfk_dma_window *w);
	void (*dma_unmap)(struct vfk_dev *dev, const struct vfk_dma_window *w);

	/* A client finished negotiation / went away (its DMA windows and IRQ
	 * eventfds are gone by the time detach is called).  NULL: nothing. */
	void (*attach)(struct vfk_dev *dev);
	void (*detach)(struct vfk_dev *dev);

	/* The client changed the interrupt set-up of IRQ `index` (enabled or
	 * disabled a type, bound eventfds).  NULL: nothing. */
	void (*irq_changed)(struct vfk_dev *dev, unsigned index);
};

/* ---- Creating a device -------------------------------------------------- */

/* Create an empty device: no BARs, no capabilities, header type 0, INTx
 * pin A.  `ops` must outlive the device. */
int vfk_dev_create(const struct vfk_dev_ops *ops, void *user,
		   struct vfk_dev **out);
/* Free the device and everything it owns.  Not while a server uses it. */
void vfk_dev_destroy(struct vfk_dev *dev);
/* The `user` pointer given at creation. */
void *vfk_dev_user(const struct vfk_dev *dev);
/* The server serving this device, or NULL. */
struct vfk_server *vfk_dev_server(const struct vfk_dev *dev);

/* Log through the server's log callback (nothing if none).  printf-style. */
void vfk_dev_log(struct vfk_dev *dev, enum vfk_log_level level,
		 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* PCI identity, written into config space at realize. */
struct vfk_pci_id {
	uint16_t vendor;
	uint16_t device;
	uint16_t subsys_vendor;
	uint16_t subsys_device;
	uint32_t class_code; /* 24 bits: base class, sub class, prog-if */
	uint8_t revision;
};
int vfk_pci_set_id(struct vfk_dev *dev, const struct vfk_pci_id *id);

/* INTx pin: 1..4 for INTA..INTD, 0 for none (then no INTx IRQ index). */
int vfk_pci_set_intx_pin(struct vfk_dev *dev, unsigned pin);

/*
 * The host page size the library assumes when deciding what a client may
 * mmap: 4096, 16384 or 65536 (a larger size than the real one reproduces a
 * 64K-page host on a 4K machine).  Default: the real page size.  Before
 * realize only.
 */
int vfk_dev_set_page_size(struct vfk_dev *dev, size_t page_size);

/* A range inside a BAR. */
struct vfk_range {
	uint64_t offset;
	uint64_t size;
};

/* BAR flags. */
#define VFK_BAR_MEM32 0x0u
#define VFK_BAR_MEM64 0x1u      /* 64-bit memory BAR: uses the next BAR slot */
#define VFK_BAR_IO 0x2u         /* I/O space; never mmap-able */
#define VFK_BAR_PREFETCH 0x4u   /* memory BAR: PCI prefetchable bit */
/*
 * While Memory Space Enable is clear, the BAR's shared memory holds
 * all-ones and what a client writes through a mapping is discarded; the
 * contents come back when decoding is enabled again.  A vfio-user server
 * cannot revoke a mapping a client holds (vfio-pci zaps its mappings
 * instead); this is the nearest equivalent.  It costs a copy of the backed
 * bytes at each transition, so large BARs may prefer not to.  The model
 * then reaches its memory through vfk_bar_mem().
 */
#define VFK_BAR_SWAP_ON_DISABLE 0x8u
/*
 * Accesses by message go to bar_read/bar_write even where the shared
 * memory could serve them, while the memory is still offered for mapping:
 * for memory that must be accessed with the client's width (device MMIO
 * behind a passthrough), or that the model must watch.
 */
#define VFK_BAR_CALLBACK_ACCESS 0x10u
/*
 * While decoding is off this BAR reads all-ones and drops writes, whatever
 * the device-wide answer (vfk_dev_set_disabled_access): nvgrace-gpu's split,
 * where device memory synthesizes ~0 with Memory Space Enable clear while
 * the real registers answer vfio-pci's EIO.  vfk_dev_set_memory_bar() sets
 * it.
 */
#define VFK_BAR_DISABLED_ONES 0x20u

/*
 * Mapping attributes a model declares safe for a BAR's shared memory; the
 * client reads them from the region's attributes capability and a VMM can
 * choose its stage-2/memslot attribute from them.  Prefetchable alone does
 * not imply either: PCI promises only that reads have no side effects and
 * that byte merging of writes is tolerated, not write-combining's
 * reordering and coalescing.  0: uncached only.
 */
#define VFK_MAP_WC 0x1u     /* write-combining mappings are safe */
#define VFK_MAP_CACHED 0x2u /* cacheable mappings are safe (plain memory) */

/* Describes one BAR. */
struct vfk_bar_desc {
	uint64_t size;           /* power of two; memory >= 16, I/O 4..256 */
	uint32_t flags;          /* VFK_BAR_* */
	struct vfk_shm *shm;     /* backing memory the client may map, or NULL */
	uint64_t shm_offset;     /* where the BAR starts inside `shm` */
	const struct vfk_range *trapped; /* ranges that must call bar_read/
					  * bar_write even though backed */
	unsigned nr_trapped;     /* entries in `trapped` (copied at set time) */
	uint32_t map_attrs;      /* VFK_MAP_*: what mapping the model allows */
	uint64_t backed_size;    /* bytes from the BAR start backed by `shm`;
				  * 0 = all.  Past them, reads return all-ones
				  * and writes are dropped (an emulated BAR
				  * over device memory of any length) */
};

/*
 * Define BAR `bar` (0..5).  A 64-bit BAR occupies `bar` and `bar`+1.  With
 * `shm`, accesses outside the trapped ranges (and outside the MSI-X table
 * and PBA) read and write the shared memory, and the library offers the
 * client mmap areas covering them, page by page: a page is mappable only if
 * no trapped byte and no other BAR's backing lies in it.  Before realize.
 */
int vfk_dev_set_bar(struct vfk_dev *dev, unsigned bar,
		    const struct vfk_bar_desc *desc);

/*
 * A 64-bit prefetchable BAR over `length` bytes of device memory at
 * `offset` in `shm`, as Linux's nvgrace-gpu exposes GPU memory: the BAR
 * size is `length` rounded up to a power of two, the mmap area covers only
 * the real memory (whole pages of it), reads between the end of the memory
 * and the end of the BAR return all-ones and writes there are dropped.
 * `map_attrs` as in vfk_bar_desc.  Before realize.
 */
int vfk_dev_set_memory_bar(struct vfk_dev *dev, unsigned bar,
			   struct vfk_shm *shm, uint64_t offset, uint64_t length,
			   uint32_t map_attrs);

/* Where a BAR's shared memory currently is for the model: the shm itself,
 * or, for a VFK_BAR_SWAP_ON_DISABLE BAR while decoding is off, the saved
 * contents.  NULL for a BAR without shm.  Server thread only. */
void *vfk_bar_mem(struct vfk_dev *dev, unsigned bar);

/*
 * Where the MSI-X table and PBA sit for a client that maps BARs.  The
 * table and PBA are emulated by the library for accesses by message in
 * every layout, and interrupts are configured with SET_IRQS.
 */
enum vfk_msix_layout {
	/* The default, as Linux's vfio-pci since 4.16: the BAR holding the
	 * table is offered for mapping whole (bar the model's own trapped
	 * ranges) with VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, for a client that
	 * emulates the table itself on top of the mapping (QEMU does).
	 * What a client writes through the mapping over the table lands in
	 * the BAR's memory without effect. */
	VFK_MSIX_MAPPABLE = 0,
	/* As vfio-pci before 4.16: the pages holding the table and PBA are
	 * left out of the mmap areas, so on a 64K-page host everything that
	 * shares a 64K page with them is trapped too. */
	VFK_MSIX_TRAPPED = 1,
	/* As QEMU's x-msix-relocation does for vfio-pci: the table and PBA
	 * move to a BAR of their own (the first free BAR slot, a 32-bit
	 * memory BAR of at least a page, trapped), and the BAR that held
	 * them is the model's alone, mappable whole.  For clients that do
	 * not honour MSIX_MAPPABLE.  Realize fails with -ENOSPC when no BAR
	 * slot is free. */
	VFK_MSIX_RELOCATED = 2,
};
/* Before realize; -EINVAL for an unknown layout. */
int vfk_dev_set_msix_layout(struct vfk_dev *dev, enum vfk_msix_layout layout);

/* An expansion ROM with this image (copied); the BAR is the image size
 * rounded up to a power of two, at least 2 KiB.  Before realize. */
int vfk_dev_set_rom(struct vfk_dev *dev, const void *image, size_t len);

/* ---- Capabilities (before realize; the chain is in call order) ---------- */

/* Power management (PCI PM 1.2, D0/D3hot, NoSoftRst). */
int vfk_pci_add_pm(struct vfk_dev *dev);

#define VFK_MSI_64BIT 0x1u    /* 64-bit message address */
#define VFK_MSI_MASKABLE 0x2u /* per-vector mask and pending bits */
/* MSI with `nvec` vectors (1, 2, 4, 8, 16 or 32). */
int vfk_pci_add_msi(struct vfk_dev *dev, unsigned nvec, uint32_t flags);

/*
 * MSI-X with `nvec` vectors (1..2048); table and PBA in the given BARs at
 * the given offsets (8-byte aligned, inside their BARs, not overlapping).
 * The library emulates both: a client never reaches them through a mapping.
 */
int vfk_pci_add_msix(struct vfk_dev *dev, unsigned nvec, unsigned table_bar,
		     uint32_t table_offset, unsigned pba_bar,
		     uint32_t pba_offset);

/* PCI Express port types (the PCIe capability's Device/Port Type). */
enum vfk_pcie_type {
	VFK_PCIE_ENDPOINT = 0,
	VFK_PCIE_LEGACY_ENDPOINT = 1,
	VFK_PCIE_RC_INTEGRATED = 9,
};
#define VFK_PCIE_FLR 0x1u /* advertise Function Level Reset */
/* PCI Express capability (version 2) with the given type. */
int vfk_pci_add_express(struct vfk_dev *dev, enum vfk_pcie_type type,
			uint32_t flags);

/* PCI Advanced Features capability with Function Level Reset, the way
 * conventional PCI devices offer FLR. */
int vfk_pci_add_af(struct vfk_dev *dev);

/* Vendor-specific capability; `data` is what follows the length byte
 * (len <= 250).  `*offset` (may be NULL) receives its config offset. */
int vfk_pci_add_vendor(struct vfk_dev *dev, const void *data, uint8_t len,
		       uint16_t *offset);

/* Extended capability `id`/`version` with `len` bytes of body after the
 * 4-byte header.  Needs a PCI Express capability. */
int vfk_pci_add_ext_cap(struct vfk_dev *dev, uint16_t id, uint8_t version,
			const void *body, uint16_t len, uint16_t *offset);

/*
 * Finish the description: lay out config space, compute the mmap areas.
 * Called by vfk_server_create() if the model did not.  After it, the
 * set/add functions above return -EBUSY.
 */
int vfk_dev_realize(struct vfk_dev *dev);

/* ---- Config space from the model's side --------------------------------- */

/* Read `size` (1, 2 or 4) bytes at `offset` of the virtual config space. */
uint32_t vfk_config_read(struct vfk_dev *dev, uint32_t offset, unsigned size);
/*
 * Set `size` bytes at `offset` as the device itself would (status bits,
 * read-only registers): masks do not apply.  For initial values of the
 * model's own registers and capabilities.  0 or -EINVAL (out of range).
 */
int vfk_config_set(struct vfk_dev *dev, uint32_t offset, unsigned size,
		   uint32_t value);
/* Make bits writable by the client (`wmask`) or write-1-to-clear (`w1c`). */
int vfk_config_set_mask(struct vfk_dev *dev, uint32_t offset, unsigned size,
			uint32_t wmask, uint32_t w1c);

/*
 * What a client's BAR access gets while the BAR's decoding is disabled in
 * the command register (Memory Space Enable for memory BARs, I/O Space
 * Enable for I/O BARs).  Shown by `vfiokit info`.
 */
enum vfk_disabled_access {
	VFK_DISABLED_EIO = 0,      /* an EIO error reply, as Linux vfio-pci */
	VFK_DISABLED_ALL_ONES = 1, /* reads all-ones, writes dropped, as many
				    * platforms' hardware answers */
};
int vfk_dev_set_disabled_access(struct vfk_dev *dev,
				enum vfk_disabled_access policy);

/*
 * The device-wide choices every model gets from the library, whatever its
 * registers: how disabled decoding answers, where MSI-X sits, whether
 * mappings stop being honoured while decoding is off, and the device's DMA
 * address width.  A model's create function passes the caller's policy on
 * with one vfk_dev_set_policy() call before realize, so that `vfiokit
 * serve`'s device-wide options apply to every model alike.
 */
struct vfk_dev_policy {
	enum vfk_disabled_access disabled_access; /* default EIO, as vfio-pci */
	enum vfk_msix_layout msix;                /* default VFK_MSIX_MAPPABLE */
	/* Every memory BAR backed by shared memory gets
	 * VFK_BAR_SWAP_ON_DISABLE at realize (see there). */
	bool revoke_on_disable;
	/* The DMA address width, 32..64; 0 means 64 (vfk_dev_set_dma_mask). */
	unsigned dma_mask_bits;
};
/* Apply `p`.  Before realize (-EBUSY after); -EINVAL for a value out of
 * range, and then nothing is applied. */
int vfk_dev_set_policy(struct vfk_dev *dev, const struct vfk_dev_policy *p);

/* Whether memory / I/O decoding is on: the command register enables it
 * and the function is not in D3hot (where, as in vfio-pci, BAR accesses
 * get the decoding-off answer). */
bool vfk_dev_memory_enabled(struct vfk_dev *dev);
bool vfk_dev_io_enabled(struct vfk_dev *dev);
/* Whether the command register enables bus mastering (DMA). */
bool vfk_dev_bus_master(struct vfk_dev *dev);

/* ---- Register helpers for bar_read/bar_write -----------------------------
 * A client's access arrives as (offset, bytes) and may cover part of a
 * register or several; these fold it onto one register of `width` bytes
 * (1..8) at offset `reg`, little-endian as PCI is. */

/* True if the access [off, off+count) touches the register. */
static inline bool vfk_reg_hit(uint64_t off, uint32_t count, uint64_t reg,
			       unsigned width)
{
	return off < reg + width && reg < off + count;
}
/* The register's value after the access wrote `buf` over `old`. */
uint64_t vfk_reg_merge(uint64_t old, uint64_t reg, unsigned width,
		       uint64_t off, const void *buf, uint32_t count);
/* Put the register's bytes that the access covers into `buf`. */
void vfk_reg_fill(void *buf, uint64_t off, uint32_t count, uint64_t reg,
		  unsigned width, uint64_t value);

/* ---- Interrupts --------------------------------------------------------- */

/*
 * Signal MSI-X or MSI vector `vector`, or INTx (vector 0 of VFK_PCI_INTX,
 * which asserts the line: see vfk_intx_set()).  A masked MSI-X vector
 * (vector or function mask) gets its pending bit instead, and fires when
 * unmasked; a masked MSI vector likewise with the MSI pending bits.
 * Thread-safe.  0 if delivered or left pending, -ENOENT if the index is not
 * the one the client enabled or the vector has no eventfd, -EINVAL if out
 * of range.
 */
int vfk_irq_trigger(struct vfk_dev *dev, unsigned index, unsigned vector);

/*
 * Raise the device's interrupt `vector` in whatever mode the client has
 * enabled: MSI-X, else MSI (vector clamped to the enabled count), else an
 * INTx assertion.  Thread-safe.  -ENOENT if no mode is enabled.
 */
int vfk_irq_raise(struct vfk_dev *dev, unsigned vector);

/*
 * Report an uncorrectable error the device cannot recover from by itself:
 * signals the ERR interrupt, as vfio-pci relays a fatal AER error to its
 * user (QEMU then stops the VM for an operator to look at).  Not for
 * errors a driver recovers from by resetting the device (NVMe's CFS).
 * Thread-safe.  -ENOENT if the client bound no ERR eventfd, or the device
 * is not PCI Express (no ERR index).
 */
int vfk_dev_report_error(struct vfk_dev *dev);

/*
 * Drive the INTx line (level-triggered).  Asserting an unmasked line
 * signals the eventfd and masks the line (automask, as vfio-pci does); the
 * client unmasks with SET_IRQS UNMASK, and if the line is still asserted
 * then, it fires again.  Thread-safe.
 */
int vfk_intx_set(struct vfk_dev *dev, bool asserted);

/*
 * The eventfd the client bound to vector `vector` of IRQ `index`, or -1.
 * Borrowed: valid until the next SET_IRQS or disconnect (the irq_changed
 * callback says when); a passthrough model hands it to the kernel so the
 * hardware signals the client directly.  Server thread only.
 */
int vfk_irq_eventfd(struct vfk_dev *dev, unsigned index, unsigned vector);

/* Which IRQ index the client enabled (VFK_PCI_INTX, _MSI, _MSIX), or -1. */
int vfk_irq_active(struct vfk_dev *dev);

/* ---- DMA ---------------------------------------------------------------- */

/*
 * Message DMA and re-entrancy.  A DMA call that reaches memory without an
 * fd (vfk_dma_read/write, and vfk_dma_map_buf, sync and unmap_buf when
 * they bounce such memory) sends DMA_READ/DMA_WRITE and, while it waits
 * for the reply, goes on serving the client on the same stack: QEMU
 * serves those requests under its big lock, which a vCPU may hold while
 * it waits for the answer to an MMIO access, so not answering would
 * deadlock.  So while a model waits in such a call, any callback may run:
 * bar_read/bar_write, config_written, reset, dma_map/dma_unmap,
 * irq_changed, and detach (the client left).  What a model does about it:
 *   - latch what an operation needs when it starts (registers at the
 *     doorbell), rather than read registers the client may rewrite;
 *   - compare vfk_dev_reset_count() before and after: a reset voids the
 *     operation, which must then signal no completion.  The library helps:
 *     a message DMA call during which the device was reset fails with
 *     -ECANCELED;
 *   - recheck host pointers it holds across the call (vfk_dma_buf_check,
 *     or a new vfk_dma_translate): the window may be gone.
 * Calls that reach only mapped memory never serve the client.
 */

/*
 * memmove for bytes of client memory the model reached through a host
 * pointer (vfk_dma_translate, vfk_dma_map_buf): -EFAULT instead of a
 * SIGBUS when the client made the memory vanish under its mapping (it
 * shrank the file), as an IOMMU fault fails a DMA; the file's windows
 * then fail every later DMA too (logged once).  An access to such memory
 * outside this call reads zeros and writes nowhere, and fails the DMA
 * that follows.  Thread-safe.
 */
int vfk_dma_memcpy(void *dst, const void *src, size_t len);

/* Resets so far (DEVICE_RESET, FLR, a client leaving): a model that
 * waited in a DMA call compares it before and after.  Server thread. */
unsigned vfk_dev_reset_count(const struct vfk_dev *dev);

/*
 * Copy `len` bytes from client memory at `iova` into `buf` (or from `buf`
 * into client memory).  The range may span several windows.  Windows with
 * a host mapping are copied directly; others through DMA_READ/DMA_WRITE
 * messages, which is allowed only on the server thread and outside
 * bar_read/bar_write/config_written callbacks (it needs the client to
 * answer: -EDEADLK there), and serves the client meanwhile (see above;
 * -ECANCELED if the device was reset meanwhile).  -EFAULT if a byte is
 * not mapped, -EACCES if a window forbids the access; nothing is copied
 * then.  Thread-safe for mapped windows.
 */
int vfk_dma_read(struct vfk_dev *dev, uint64_t iova, void *buf, size_t len);
int vfk_dma_write(struct vfk_dev *dev, uint64_t iova, const void *buf,
		  size_t len);

/* One piece of a translated DMA range. */
struct vfk_sg {
	uint64_t iova;
	uint64_t len;
	void *host; /* NULL: the window has no mapping (use vfk_dma_read/write) */
};

/*
 * Translate [iova, iova+len) for an access of kind `prot` into at most
 * `max` pieces.  A piece is a run of windows whose host addresses
 * continue each other (a client, or a guest IOMMU, that maps contiguous
 * memory window by window yields one piece), or a run of windows without
 * a mapping (host NULL).  Returns the number of pieces, -EFAULT/-EACCES
 * as above, or -ENOSPC if more than `max` are needed.  Host pointers stay
 * valid until the model's dma_unmap callback returns for any window of
 * their piece.  Thread-safe.
 */
int vfk_dma_translate(struct vfk_dev *dev, uint64_t iova, uint64_t len,
		      uint32_t prot, struct vfk_sg *sg, unsigned max);

/*
 * As vfk_dma_translate(), for walking a range of any length `max` pieces
 * at a time: when more pieces are needed than `max`, it fills all `max`
 * and returns `max`, and the pieces cover only the start of the range
 * (the walk goes on at sg[max-1].iova + sg[max-1].len).  Errors are those
 * of the part walked.  -EINVAL if `max` is 0.
 */
int vfk_dma_translate_prefix(struct vfk_dev *dev, uint64_t iova, uint64_t len,
			     uint32_t prot, struct vfk_sg *sg, unsigned max);

/* ---- Streaming DMA with a mask, bounce buffers and sync points ------------
 *
 * The model of Linux's streaming DMA API, for device engines that need one
 * host pointer to work on.  Memory the server has no mapping of (windows
 * without fd) and ranges whose windows are not contiguous in the server
 * are bounced: the library hands the engine a buffer from a server-side
 * pool and copies at the sync points.  A range past the device's DMA mask
 * fails (-EFAULT) like every access of the device there: bouncing for a
 * narrow mask is the driver's side's job (swiotlb), not the device's.  The
 * sync points are real barriers on this architecture (the CPU is
 * cache-coherent with itself), and call the model's coherency hooks where
 * it models a non-coherent engine.
 */
enum vfk_dma_dir {
	VFK_DMA_TO_DEVICE = 1,     /* the engine reads client memory */
	VFK_DMA_FROM_DEVICE = 2,   /* the engine writes client memory */
	VFK_DMA_BIDIRECTIONAL = 3, /* both: TO_DEVICE | FROM_DEVICE */
};

/* A streaming mapping, filled by vfk_dma_map_buf(). */
struct vfk_dma_buf {
	void *host;            /* what the engine accesses */
	uint64_t iova;         /* the client range it stands for */
	size_t len;            /* bytes at `host` and at `iova` */
	enum vfk_dma_dir dir;  /* as mapped: what the sync points copy */
	bool bounced;          /* host is a pool buffer, not client memory */
	uint32_t slot;         /* private to the library */
	unsigned long gen;     /* private: the DMA table as mapped */
};

/*
 * The device's DMA address width, 32..64 bits (default 64).  Enforced at
 * the device boundary: vfk_dma_read/write, vfk_dma_translate(_prefix) and
 * vfk_dma_map_buf fail with -EFAULT for any byte past it, as a master
 * abort would, whatever the client mapped there.  A driver keeps its IOVAs
 * below it (the client library: vfk_device_dma_limit()).
 */
int vfk_dev_set_dma_mask(struct vfk_dev *dev, unsigned bits);
/* Size of the bounce pool (default 1 MiB; allocated at realize). */
int vfk_dev_set_bounce_pool(struct vfk_dev *dev, size_t bytes);

/* Cache maintenance for a modeled non-coherent engine; both optional. */
struct vfk_dma_coherency_ops {
	unsigned version; /* 1 */
	/* Before the engine reads [addr, addr+len): write back CPU caches. */
	void (*writeback)(void *user, void *addr, size_t len);
	/* Before the CPU reads what the engine wrote: invalidate. */
	void (*invalidate)(void *user, void *addr, size_t len);
};
/* Call `ops` (kept: must outlive the device; NULL: none) with `user` from
 * the sync points, on the thread that calls them.  -EINVAL if
 * ops->version is 0. */
int vfk_dev_set_dma_coherency(struct vfk_dev *dev,
			      const struct vfk_dma_coherency_ops *ops,
			      void *user);

/*
 * Map [iova, iova+len) for the engine.  Checks the range like
 * vfk_dma_read/write (-EFAULT, -EACCES, and -EFAULT past the DMA mask)
 * before anything else.  Bounces when the range spans windows whose
 * memory is not contiguous in the server, or has no host mapping;
 * then, for TO_DEVICE and BIDIRECTIONAL, the pool buffer is filled from
 * client memory, and for FROM_DEVICE too where the client allows reads
 * (else zeroed), since the buffer is copied back whole.  -ENOMEM if the
 * pool has no room.  `buf` is written on success only.  Bounced mappings
 * of windows without fd follow the message-DMA rules of vfk_dma_read().
 */
int vfk_dma_map_buf(struct vfk_dev *dev, uint64_t iova, size_t len,
		    enum vfk_dma_dir dir, struct vfk_dma_buf *buf);
/* The engine is about to access the buffer: refresh a TO_DEVICE bounce
 * buffer from client memory, write back, then a full barrier. */
int vfk_dma_sync_for_device(struct vfk_dev *dev, struct vfk_dma_buf *buf);
/* The CPU (and the client) are about to look at what the engine wrote:
 * barrier, invalidate, copy a FROM_DEVICE bounce buffer to client memory. */
int vfk_dma_sync_for_cpu(struct vfk_dev *dev, struct vfk_dma_buf *buf);
/* Sync for the CPU if the engine wrote, and release the buffer. */
int vfk_dma_unmap_buf(struct vfk_dev *dev, struct vfk_dma_buf *buf);
/* Release the buffer without syncing for the CPU, for a transfer that
 * failed: nothing left in a bounce buffer reaches the client (Linux's
 * DMA_ATTR_SKIP_CPU_SYNC). */
void vfk_dma_release_buf(struct vfk_dev *dev, struct vfk_dma_buf *buf);
/*
 * Whether `buf` may still be used: 0, or -EFAULT if it is client memory
 * (not bounced) and the client unmapped it since.  Call it after any DMA
 * call that may have served the client meanwhile (see "Message DMA and
 * re-entrancy") and before the engine touches `host`: an engine that
 * went on would reach memory that is gone.
 */
int vfk_dma_buf_check(struct vfk_dev *dev, struct vfk_dma_buf *buf);

/* ---- Serving ------------------------------------------------------------ */

#define VFK_SERVER_OPTS_VERSION 2

/* Server options; zero-initialise and set what you need. */
struct vfk_server_opts {
	unsigned version;           /* VFK_SERVER_OPTS_VERSION */
	vfk_log_fn log;             /* NULL: silent */
	void *log_user;             /* passed to `log` */
	enum vfk_log_level log_level; /* most verbose level passed; 0 = INFO */
	uint32_t max_data_xfer;     /* REGION/DMA data per message; 0 = 1 MiB */
	unsigned max_msg_fds;       /* fds accepted per message; 0 = 64 */
	uint32_t max_dma_maps;      /* DMA windows at once; 0 = 65535 */
	int reply_timeout_ms;       /* wait for the client's DMA replies; 0 = 5000 */
	bool exit_on_disconnect;    /* done after the first client leaves, as
				     * the spec allows a backend program */
	/* Version 2. */
	/* When a client leaves, the device is reset to its power-on state
	 * (the model's reset with VFK_RESET_RELEASE after its detach), as
	 * vfio-pci resets a device when its last user closes it.  True keeps
	 * config space and register state for the next client instead. */
	bool keep_state_on_disconnect;
	/* How long a stop waits for a client that holds the device after the
	 * REQ interrupt asked it to release it (vfio-pci's device request;
	 * QEMU's source answers it by unplugging the device): 0 = 10 s;
	 * negative: stop at once without asking.  A second stop, or a client
	 * without a REQ eventfd, stops at once. */
	int stop_grace_ms;
};

/* Serve `dev` (realizing it if needed).  `opts` may be NULL. */
int vfk_server_create(struct vfk_dev *dev, const struct vfk_server_opts *opts,
		      struct vfk_server **out);
/* Close every fd and free the server; the device stays. */
void vfk_server_destroy(struct vfk_server *srv);

/* Listen on a new AF_UNIX socket at `path`.  A stale socket file that
 * nobody listens on is replaced; a live one gives -EADDRINUSE. */
int vfk_server_listen(struct vfk_server *srv, const char *path);
/*
 * Use `fd`, either a listening AF_UNIX socket or an already connected one
 * (the --fd convention of vfio-user backends).  Takes ownership on success.
 * With a connected fd, the server serves that one client and then reports
 * VFK_SERVER_DONE from dispatch.
 */
int vfk_server_adopt_fd(struct vfk_server *srv, int fd);

/* A pollable fd (epoll): readable when vfk_server_dispatch() has work. */
int vfk_server_fd(struct vfk_server *srv);

/* vfk_server_dispatch() result when nothing more can be served: a
 * connected-fd server's client left, or vfk_server_stop() was called. */
#define VFK_SERVER_DONE 1

/*
 * Do what is ready without waiting: accept a client, handle the messages
 * already received, run watched-fd callbacks.  0, VFK_SERVER_DONE, or a
 * negative errno for a failure of the server itself (a misbehaving client
 * only loses its connection).
 */
int vfk_server_dispatch(struct vfk_server *srv);

/* Loop on vfk_server_fd() and dispatch until done or stopped.  0 when
 * stopped or done, negative errno on failure. */
int vfk_server_run(struct vfk_server *srv);

/* Make run() return and dispatch() report VFK_SERVER_DONE.  Thread-safe and
 * async-signal-safe (for a SIGTERM handler). */
void vfk_server_stop(struct vfk_server *srv);

/* Callback for a watched fd, on the server thread. */
typedef void (*vfk_watch_fn)(struct vfk_server *srv, int fd, uint32_t events,
			     void *arg);
/*
 * Call `fn` when `fd` is ready for `events` (EPOLLIN, EPOLLOUT), from
 * dispatch/run.  For a model's own work: an eventfd its registers kick, a
 * timerfd.  The fd stays the caller's.  -EEXIST if already watched.
 */
int vfk_server_watch(struct vfk_server *srv, int fd, uint32_t events,
		     vfk_watch_fn fn, void *arg);
/* Stop watching `fd`.  -ENOENT if not watched. */
int vfk_server_unwatch(struct vfk_server *srv, int fd);

/* Whether a client is connected and past VERSION. */
bool vfk_server_connected(struct vfk_server *srv);

/* Counters, for tools and benchmarks. */
struct vfk_server_stats {
	uint64_t clients;       /* clients accepted since creation */
	uint64_t messages;      /* commands handled */
	uint64_t errors;        /* commands answered with an error */
	uint64_t dropped;       /* clients dropped for protocol violations */
	uint64_t dma_messages;  /* DMA_READ/DMA_WRITE sent to clients */
};
void vfk_server_get_stats(struct vfk_server *srv, struct vfk_server_stats *out);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: MIT */
/* Private state of the server library.  Not installed. */
#ifndef VFK_SERVER_INTERNAL_H
#define VFK_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vfiokit/proto.h"
#include "vfiokit/server.h"

#define CFG_SPACE_SIZE 4096u
#define CFG_LEGACY_SIZE 256u
#define MAX_BARS 6u
#define MAX_AREAS 16u   /* mmap areas per BAR */
#define MAX_TRAPPED 16u /* trapped ranges per BAR, user + MSI-X */
#define MAX_CFG_HOOKS 16u

struct vfk_shm {
	atomic_uint refs;
	int fd;
	bool borrowed;         /* the fd is the caller's: not closed */
	uint64_t file_offset;  /* file offset of byte 0 */
	void *ptr;
	size_t size;
};

struct bar_state {
	bool present;       /* this slot holds a BAR (the lower one for 64-bit) */
	bool upper;         /* upper half of a 64-bit BAR: no region */
	bool msix_only;     /* made by MSI-X relocation: the library's alone */
	uint64_t size;
	uint32_t flags;     /* VFK_BAR_* */
	struct vfk_shm *shm;
	uint64_t shm_offset;
	struct vfk_range trapped[MAX_TRAPPED]; /* sorted at realize */
	unsigned nr_trapped;
	struct vfk_range areas[MAX_AREAS];     /* mmap areas, BAR-relative */
	unsigned nr_areas;
	uint32_t map_attrs;     /* VFK_MAP_* */
	uint64_t backed_size;   /* bytes backed by shm (== size unless a
				 * memory BAR over device memory) */
	uint8_t *saved;         /* SWAP_ON_DISABLE: contents while disabled */
	bool swapped;           /* the contents are in `saved` */
};

/* A config-space range with side effects on write (capabilities). */
struct cfg_hook {
	uint16_t start, end; /* [start, end) */
	void (*write)(struct vfk_dev *dev, uint32_t off, uint32_t len,
		      const uint8_t *old);
};

/* One IRQ index: eventfds bound by the client and per-vector masks. */
struct irq_index {
	unsigned count;         /* vectors the index offers */
	int *trigger;           /* eventfd per vector, -1 if none */
	uint8_t *client_mask;   /* SET_IRQS MASK state per vector */
};

struct dma_file {
	struct dma_file *next;
	dev_t dev;
	ino_t ino;
	int prot;        /* mmap protection of the mapping */
	uint64_t map_off; /* file offset of base[0] */
	uint8_t *base;   /* mapping of file bytes [map_off, map_off + len) */
	size_t len;
	unsigned refs;   /* windows using this mapping */
	atomic_bool vanished; /* the client shrank the file under it */
};

struct dma_win {
	uint64_t iova;
	uint64_t last;   /* iova + size - 1 */
	uint32_t prot;
	uint8_t *host;   /* NULL: no fd, reached by messages */
	struct dma_file *file;
};

#define DMA_BLOCK 16u /* windows per second-level block: 128 bytes of starts */

struct dma_table {
	pthread_rwlock_t lock;  /* readers: translation on any thread */
	struct dma_win *w;      /* sorted by iova, disjoint */
	uint64_t *starts;       /* w[i].iova, dense, for the search */
	uint64_t *summary;      /* starts[k * DMA_BLOCK]: the search's first level */
	size_t nsummary;
	size_t n, cap;
	struct dma_file *files;
	uint32_t max;
	atomic_size_t hint;     /* index of the window that answered last */
	atomic_ulong gen;       /* windows removed so far: vfk_dma_buf_check */
	unsigned faults_seen;   /* SIGBUS guard faults attributed so far */
};

struct vfk_dev {
	const struct vfk_dev_ops *ops;
	void *user;
	struct vfk_server *srv;
	bool realized;
	size_t page_size;

	struct vfk_pci_id id;
	unsigned intx_pin;

	/* Config space: value, client-writable bits, write-1-to-clear bits,
	 * and the power-on image restored by reset. */
	uint8_t cfg[CFG_SPACE_SIZE];
	uint8_t wmask[CFG_SPACE_SIZE];
	uint8_t w1c[CFG_SPACE_SIZE];
	uint8_t cfg_reset[CFG_SPACE_SIZE];
	uint32_t cfg_size;           /* 256, or 4096 with PCI Express */
	uint16_t std_cap_next;       /* next free offset for a capability */
	uint16_t std_cap_last;       /* offset of the last capability, 0: none */
	uint16_t ext_cap_next, ext_cap_last;
	struct cfg_hook hooks[MAX_CFG_HOOKS];
	unsigned nr_hooks;
	uint16_t pcie_off, pm_off, msi_off, msix_off;
	uint32_t pcie_flags;

	struct bar_state bars[MAX_BARS];
	uint8_t *rom;
	size_t rom_len, rom_size;

	/* MSI */
	unsigned msi_nvec;
	uint32_t msi_flags;

	/* MSI-X: the emulated table and pending bits */
	unsigned msix_nvec;
	unsigned msix_table_bar, msix_pba_bar;
	uint32_t msix_table_off, msix_pba_off;
	uint8_t *msix_table;       /* nvec * 16 bytes */
	uint64_t *msix_pba;        /* nvec bits */

	/* Interrupt state, shared with device threads: irq_lock. */
	pthread_mutex_t irq_lock;
	struct irq_index irqs[VFK_PCI_NUM_IRQS];
	int irq_active;            /* VFK_PCI_INTX/MSI/MSIX or -1 */
	bool intx_asserted, intx_masked;
	/* The Interrupt Status bit, changed by device threads: kept here
	 * and merged into STATUS on read, so config space itself is only
	 * written by the server thread. */
	atomic_bool intx_status;
	int intx_unmask_fd;        /* client's unmask eventfd, -1 if none */
	unsigned intx_unmask_gen;  /* changes whenever intx_unmask_fd does */
	uint32_t msi_pending;      /* MSI pending bits without the capability */

	enum vfk_msix_layout msix_layout;
	bool revoke_on_disable;    /* SWAP_ON_DISABLE on every shm BAR */
	uint16_t af_off;

	struct dma_table dma;
	/* Streaming DMA: mask, bounce pool (page-granular slots), hooks. */
	unsigned dma_mask_bits;
	uint64_t dma_limit;         /* highest address the device can emit */
	size_t pool_size;
	uint8_t *pool;
	uint8_t *pool_used;         /* one byte per pool page: 1 if in use */
	pthread_mutex_t pool_lock;
	const struct vfk_dma_coherency_ops *coh;
	void *coh_user;
	/* Set while a region-access callback runs: message DMA would deadlock. */
	bool in_region_cb;
	bool flr_requested; /* a config write asked for FLR; done after it */
	unsigned reset_count; /* resets so far (vfk_dev_reset_count) */
	enum vfk_disabled_access disabled_access;
	pthread_t srv_thread; /* the thread running dispatch, for DMA messages */
};

/* device.c */
int vfk_dev_compute_areas(struct vfk_dev *dev);
void vfk_dev_reset_state(struct vfk_dev *dev);
int vfk_dev_do_reset(struct vfk_dev *dev, enum vfk_reset_kind kind);
void vfk_dev_sync_decode(struct vfk_dev *dev);
bool vfk_dev_bar_exclusive(struct vfk_dev *dev, unsigned bar);

/* config.c */
void vfk_cfg_init_header(struct vfk_dev *dev);
void vfk_cfg_finish_header(struct vfk_dev *dev);
int vfk_cfg_add_hook(struct vfk_dev *dev, uint16_t start, uint16_t len,
		     void (*write)(struct vfk_dev *, uint32_t, uint32_t,
				   const uint8_t *));
int vfk_cfg_access(struct vfk_dev *dev, bool write, uint64_t off, void *buf,
		   uint32_t count);
void vfk_cfg_set_bytes(struct vfk_dev *dev, uint32_t off, const void *v,
		       unsigned len, const uint8_t *wmask, const uint8_t *w1c);
static inline uint16_t cfg_get16(const struct vfk_dev *d, uint32_t off)
{
	return (uint16_t)(d->cfg[off] | (d->cfg[off + 1] << 8));
}
static inline uint32_t cfg_get32(const struct vfk_dev *d, uint32_t off)
{
	return (uint32_t)d->cfg[off] | ((uint32_t)d->cfg[off + 1] << 8) |
	       ((uint32_t)d->cfg[off + 2] << 16) |
	       ((uint32_t)d->cfg[off + 3] << 24);
}
static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* irq.c */
int vfk_irq_init(struct vfk_dev *dev);
void vfk_irq_fini(struct vfk_dev *dev);
int vfk_irq_set(struct vfk_dev *dev, const struct vfk_irq_set *s,
		const int *fds, unsigned nfds);
void vfk_irq_info(struct vfk_dev *dev, unsigned index, uint32_t *flags,
		  uint32_t *count);
void vfk_irq_disconnect(struct vfk_dev *dev);
void vfk_irq_reset(struct vfk_dev *dev);
int vfk_msix_access(struct vfk_dev *dev, bool write, bool pba, uint64_t off,
		    void *buf, uint32_t count);
void vfk_msix_control_written(struct vfk_dev *dev);
void vfk_msi_config_written(struct vfk_dev *dev);
void vfk_intx_command_written(struct vfk_dev *dev);
int vfk_irq_unmask_fd(struct vfk_dev *dev, unsigned *gen);
void vfk_intx_unmask(struct vfk_dev *dev);

/* dmabuf.c */
int vfk_pool_init(struct vfk_dev *dev);
void vfk_pool_fini(struct vfk_dev *dev);

/* dma.c */
int vfk_dma_init(struct vfk_dev *dev, uint32_t max);
void vfk_dma_fini(struct vfk_dev *dev);
int vfk_dma_add(struct vfk_dev *dev, uint64_t iova, uint64_t size,
		uint32_t prot, int fd, uint64_t fd_offset);
int vfk_dma_remove(struct vfk_dev *dev, uint64_t iova, uint64_t size);
void vfk_dma_remove_all(struct vfk_dev *dev);
size_t vfk_dma_count(struct vfk_dev *dev);
unsigned long vfk_dma_guard_hits(void);
/* Attribute the SIGBUS guard's unguarded faults to this device's client
 * files and mark them vanished.  Server thread, outside DMA calls. */
void vfk_dma_note_faults(struct vfk_dev *dev);
/* Put the guard's SIGBUS handler back in front (chaining to the one now
 * installed), for a process that installed its own after the library's
 * (the test framework does, before each test). */
void vfk_dma_guard_reinstall(void);

/* region.c */
int vfk_dev_region_access(struct vfk_dev *dev, bool write, uint32_t region,
		      uint64_t off, void *buf, uint32_t count);
int vfk_dev_region_info(struct vfk_dev *dev, uint32_t index, uint32_t argsz,
		    uint8_t *out, size_t out_cap, int *fd);
uint32_t vfk_num_regions(struct vfk_dev *dev);

/* server.c: message-based DMA with the connected client */
struct vfk_channel;
/* Serve a client over `ch` (the server owns it from here on; a failure
 * leaves it the caller's): the sock channel of an accepted connection, or
 * another implementation (the fuzz harness's in-memory one).  -EBUSY if a
 * client is attached. */
int vfk_server_attach_channel(struct vfk_server *srv, struct vfk_channel *ch);
/* Whether a client (negotiated or not) is attached. */
bool vfk_server_attached(const struct vfk_server *srv);
int vfk_server_dma_msg(struct vfk_server *srv, bool write, uint64_t iova,
		       void *buf, uint64_t len);
void vfk_server_logv(struct vfk_server *srv, enum vfk_log_level level,
		     const char *fmt, va_list ap);

#endif

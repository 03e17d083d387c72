/* SPDX-License-Identifier: MIT */
/*
 * NVM Express 1.4 definitions shared by the nvme device model, the
 * userspace driver (nvme_drv.c), the tests and the benchmark: register
 * offsets and fields, command and completion layouts, opcodes, status
 * codes, and the layout of vfiokit's BAR0.
 */
#ifndef VFK_NVME_SPEC_H
#define VFK_NVME_SPEC_H

#include <stdint.h>

/* ---- PCI identity and BAR0 layout --------------------------------------- */

#define NVME_VFK_VENDOR 0x1234
#define NVME_VFK_DEVICE 0xdf04
#define NVME_VFK_CLASS 0x010802 /* mass storage, NVM, NVM Express */

/*
 * BAR0 (64-bit memory, 16 KiB): the register page is trapped, the doorbell
 * page is shared memory a client may map (so doorbell writes never become
 * messages), and the MSI-X table and PBA have a page each, emulated by the
 * library.
 */
#define NVME_BAR0_SIZE 0x4000u
#define NVME_DB_OFFSET 0x1000u   /* doorbells (CAP.DSTRD = 0: 4-byte stride) */
#define NVME_MSIX_TABLE 0x2000u
#define NVME_MSIX_PBA 0x3000u
#define NVME_MAX_IOQ 16u         /* I/O queue pairs offered */
#define NVME_NR_VECTORS (NVME_MAX_IOQ + 1)

/* Doorbell offsets in BAR0 for queue `qid`. */
#define NVME_SQTDBL(qid) (NVME_DB_OFFSET + 8u * (qid))
#define NVME_CQHDBL(qid) (NVME_DB_OFFSET + 8u * (qid) + 4u)

/* ---- Controller registers ---------------------------------------------- */

#define NVME_REG_CAP 0x00
#define NVME_REG_VS 0x08
#define NVME_REG_INTMS 0x0c
#define NVME_REG_INTMC 0x10
#define NVME_REG_CC 0x14
#define NVME_REG_CSTS 0x1c
#define NVME_REG_NSSR 0x20
#define NVME_REG_AQA 0x24
#define NVME_REG_ASQ 0x28
#define NVME_REG_ACQ 0x30
#define NVME_REG_CMBLOC 0x38
#define NVME_REG_CMBSZ 0x3c
/* vfiokit's own read-only registers (vendor-specific area of the page). */
#define NVME_REG_VFK_MAGIC 0xf00   /* "VFKN" */
#define NVME_REG_VFK_MSGS 0xf08    /* 64-bit: vfio-user messages handled */
#define NVME_REG_VFK_CMDS 0xf10    /* 64-bit: NVMe commands completed */
#define NVME_VFK_MAGIC 0x4e4b4656u

#define NVME_CAP_MQES(cap) ((uint32_t)((cap) & 0xffff))
#define NVME_CAP_TO(cap) ((uint32_t)(((cap) >> 24) & 0xff))
#define NVME_CAP_DSTRD(cap) ((uint32_t)(((cap) >> 32) & 0xf))
#define NVME_CAP_MPSMIN(cap) ((uint32_t)(((cap) >> 48) & 0xf))
#define NVME_CAP_MPSMAX(cap) ((uint32_t)(((cap) >> 52) & 0xf))

#define NVME_CC_EN 0x1u
#define NVME_CC_CSS(cc) (((cc) >> 4) & 0x7)
#define NVME_CC_MPS(cc) (((cc) >> 7) & 0xf)
#define NVME_CC_AMS(cc) (((cc) >> 11) & 0x7)
#define NVME_CC_SHN(cc) (((cc) >> 14) & 0x3)
#define NVME_CC_IOSQES(cc) (((cc) >> 16) & 0xf)
#define NVME_CC_IOCQES(cc) (((cc) >> 20) & 0xf)
#define NVME_CC_SHN_NORMAL (1u << 14)
#define NVME_CC_SHN_ABRUPT (2u << 14)
#define NVME_CC_DEFAULT_IO ((6u << 16) | (4u << 20)) /* 64-byte SQE, 16-byte CQE */

#define NVME_CSTS_RDY 0x1u
#define NVME_CSTS_CFS 0x2u
#define NVME_CSTS_SHST_MASK 0xcu
#define NVME_CSTS_SHST_OCCUR 0x4u
#define NVME_CSTS_SHST_DONE 0x8u

/* ---- Commands ------------------------------------------------------------ */

/* Submission queue entry, 64 bytes. */
struct nvme_sqe {
	uint8_t opc;
	uint8_t flags;  /* FUSE 1:0, PSDT 7:6 */
	uint16_t cid;
	uint32_t nsid;
	uint32_t cdw2, cdw3;
	uint64_t mptr;
	uint64_t prp1;  /* or the first half of SGL descriptor 1 */
	uint64_t prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

/* Completion queue entry, 16 bytes. */
struct nvme_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status; /* phase tag bit 0, status field 15:1 */
};

_Static_assert(sizeof(struct nvme_sqe) == 64, "SQE is 64 bytes");
_Static_assert(sizeof(struct nvme_cqe) == 16, "CQE is 16 bytes");

#define NVME_PSDT(flags) (((flags) >> 6) & 3)
#define NVME_FUSE(flags) ((flags) & 3)

/* Admin opcodes. */
enum {
	NVME_ADM_DELETE_SQ = 0x00,
	NVME_ADM_CREATE_SQ = 0x01,
	NVME_ADM_GET_LOG = 0x02,
	NVME_ADM_DELETE_CQ = 0x04,
	NVME_ADM_CREATE_CQ = 0x05,
	NVME_ADM_IDENTIFY = 0x06,
	NVME_ADM_ABORT = 0x08,
	NVME_ADM_SET_FEAT = 0x09,
	NVME_ADM_GET_FEAT = 0x0a,
	NVME_ADM_AER = 0x0c,
	NVME_ADM_KEEP_ALIVE = 0x18,
	NVME_ADM_DBBUF = 0x7c,
};

/* NVM I/O opcodes. */
enum {
	NVME_CMD_FLUSH = 0x00,
	NVME_CMD_WRITE = 0x01,
	NVME_CMD_READ = 0x02,
	NVME_CMD_WRITE_ZEROES = 0x08,
	NVME_CMD_DSM = 0x09,
};

#define NVME_RW_FUA (1u << 30)       /* CDW12 */
#define NVME_WZ_DEAC (1u << 25)      /* CDW12 of Write Zeroes */
#define NVME_DSM_AD (1u << 2)        /* CDW11 of Dataset Management */

/* One Dataset Management range. */
struct nvme_dsm_range {
	uint32_t cattr;
	uint32_t nlb;
	uint64_t slba;
};

/* SGL descriptor (16 bytes). */
struct nvme_sgl_desc {
	uint64_t addr;
	uint32_t len;
	uint8_t rsvd[3];
	uint8_t type; /* type 7:4, subtype 3:0 */
};
#define NVME_SGL_DATA_BLOCK 0x0
#define NVME_SGL_BIT_BUCKET 0x1
#define NVME_SGL_SEGMENT 0x2
#define NVME_SGL_LAST_SEGMENT 0x3

/* Identify CNS values. */
enum {
	NVME_CNS_NS = 0x00,
	NVME_CNS_CTRL = 0x01,
	NVME_CNS_NS_ACTIVE_LIST = 0x02,
	NVME_CNS_NS_DESC_LIST = 0x03,
	NVME_CNS_CS_NS = 0x05,
	NVME_CNS_CS_CTRL = 0x06,
};

/* Feature identifiers. */
enum {
	NVME_FEAT_ARBITRATION = 0x01,
	NVME_FEAT_POWER_MGMT = 0x02,
	NVME_FEAT_TEMP_THRESH = 0x04,
	NVME_FEAT_ERR_RECOVERY = 0x05,
	NVME_FEAT_VOLATILE_WC = 0x06,
	NVME_FEAT_NUM_QUEUES = 0x07,
	NVME_FEAT_IRQ_COALESCE = 0x08,
	NVME_FEAT_IRQ_CONFIG = 0x09,
	NVME_FEAT_WRITE_ATOMIC = 0x0a,
	NVME_FEAT_ASYNC_EVENT = 0x0b,
};

/* Log page identifiers. */
enum {
	NVME_LOG_ERROR = 0x01,
	NVME_LOG_SMART = 0x02,
	NVME_LOG_FW_SLOT = 0x03,
	NVME_LOG_CMD_EFFECTS = 0x05,
	NVME_LOG_VFK_STATS = 0xc0, /* vendor-specific: see struct nvme_vfk_stats */
};

/* Error Information log entry, 64 bytes. */
struct nvme_error_log {
	uint64_t error_count;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;     /* status field 15:1, phase tag bit 0 */
	uint16_t param_loc;  /* byte 7:0, bit 10:8 of the command */
	uint64_t lba;
	uint32_t nsid;
	uint8_t vs;
	uint8_t trtype;
	uint8_t rsvd[2];
	uint64_t cs_info;
	uint16_t trtype_spec;
	uint8_t rsvd2[22];
};
_Static_assert(sizeof(struct nvme_error_log) == 64, "error log entry is 64 bytes");

/* vfiokit statistics log page (LID 0xC0), read-only and per controller
 * since the server started. */
#define NVME_VFK_LAT_SAMPLES 1024
struct nvme_vfk_stats {
	uint64_t commands;       /* commands completed (admin and I/O) */
	uint64_t io_commands;
	uint64_t polls;          /* poll loop iterations that found work */
	uint64_t idle_polls;     /* ... that found none */
	uint64_t sleeps;         /* times the poller slept */
	uint64_t wakeups;        /* sleeps cut short by a trapped doorbell */
	uint64_t doorbell_errors;
	uint64_t deferred;       /* fetches delayed by a full CQ */
	uint64_t irqs;           /* interrupts raised */
	uint64_t uring_submits;  /* io_uring_submit calls */
	uint64_t bounced;        /* requests served through the buffered fd */
	uint32_t nr_samples;     /* valid entries in lat_ns */
	uint32_t sample_every;   /* one command in N is timed */
	uint64_t messages;       /* vfio-user messages the server handled, as
				  * of its last register, config or IRQ
				  * callback */
	uint64_t rsvd[3];
	/* Server-side time of sampled read/write commands, from the SQE
	 * being fetched to its CQE being posted, in nanoseconds. */
	uint32_t lat_ns[NVME_VFK_LAT_SAMPLES];
};

/* ---- Status codes (CQE status field, without the phase bit) ------------- */

#define NVME_SCT_GENERIC 0
#define NVME_SCT_CMD 1
#define NVME_SCT_MEDIA 2
#define NVME_STATUS(sct, sc) ((uint16_t)(((sct) << 8) | (sc)))
#define NVME_DNR 0x4000u /* do not retry, in the 15-bit status field */
/* The status field of a CQE's upper half (shifted right by one). */
#define NVME_CQE_STATUS(cqe) ((uint16_t)((cqe)->status >> 1))
#define NVME_STATUS_CODE(st) ((uint16_t)((st) & 0x7ff)) /* SCT and SC */

enum {
	NVME_SC_SUCCESS = 0x00,
	NVME_SC_INVALID_OPCODE = 0x01,
	NVME_SC_INVALID_FIELD = 0x02,
	NVME_SC_CID_CONFLICT = 0x03,
	NVME_SC_DATA_XFER_ERROR = 0x04,
	NVME_SC_INTERNAL = 0x06,
	NVME_SC_ABORT_REQ = 0x07,
	NVME_SC_ABORT_SQ_DELETED = 0x08,
	NVME_SC_INVALID_NS = 0x0b,
	NVME_SC_CMD_SEQ_ERROR = 0x0c,
	NVME_SC_SGL_INVALID_LAST = 0x0d,
	NVME_SC_SGL_INVALID_COUNT = 0x0e,
	NVME_SC_SGL_INVALID_DATA = 0x0f,
	NVME_SC_SGL_INVALID_TYPE = 0x11,
	NVME_SC_PRP_OFFSET_INVALID = 0x13,
	NVME_SC_SGL_INVALID_OFFSET = 0x16,
	NVME_SC_LBA_RANGE = 0x80,
	NVME_SC_CAP_EXCEEDED = 0x81,
	NVME_SC_NS_NOT_READY = 0x82,
};

enum { /* command specific (SCT 1) */
	NVME_SC_CQ_INVALID = 0x00,
	NVME_SC_QID_INVALID = 0x01,
	NVME_SC_QUEUE_SIZE = 0x02,
	NVME_SC_ABORT_LIMIT = 0x03,
	NVME_SC_AER_LIMIT = 0x05,
	NVME_SC_INVALID_VECTOR = 0x08,
	NVME_SC_INVALID_LOG_PAGE = 0x09,
	NVME_SC_INVALID_QUEUE_DELETION = 0x0c,
	NVME_SC_FEATURE_NOT_SAVEABLE = 0x0d,
	NVME_SC_FEATURE_NOT_CHANGEABLE = 0x0e,
	NVME_SC_FEATURE_NOT_PER_NS = 0x0f,
};

enum { /* media and data integrity errors (SCT 2) */
	NVME_SC_WRITE_FAULT = 0x80,
	NVME_SC_READ_ERROR = 0x81,
};

/* Asynchronous event types and infos. */
#define NVME_AER_TYPE_ERROR 0
#define NVME_AER_TYPE_SMART 1
#define NVME_AER_TYPE_NOTICE 2
#define NVME_AER_ERR_INVALID_DB 0x00      /* write to invalid doorbell register */
#define NVME_AER_ERR_INVALID_DB_VALUE 0x01
#define NVME_AER_RESULT(type, info, lid) \
	((uint32_t)(type) | ((uint32_t)(info) << 8) | ((uint32_t)(lid) << 16))

#endif

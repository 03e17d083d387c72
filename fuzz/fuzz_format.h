/* SPDX-License-Identifier: MIT */
/*
 * Input formats of the fuzz harnesses, shared with the seed generator so a
 * change of format cannot leave the seeds behind.
 *
 * fuzz_proto input:
 *
 *   sel(1) payload(...) params(16)
 *
 * `sel` % PF_NSEL picks the decoder.  The 16 bytes of parameters are taken
 * from the END of the input (zeros if the input is shorter than 17 bytes),
 * so the fuzzer can change the payload's length without shifting them:
 * u32 a, u32 b, u64 c, host-endian.
 *
 * fuzz_server input:
 *
 *   cfg0(1) cfg1(1) record*
 *   record := ctl(1) len(2, little-endian) bytes[len]
 *
 * The configuration bytes choose server options and the client's VERSION
 * capabilities (SF_*).  Each record's bytes are written to the server's
 * socket with one sendmsg(), with the fds chosen by `ctl` attached; a len
 * past the end of the input is cut to what is left.  Once the server has
 * dropped a client, records are skipped up to the next RF_RECONNECT.
 */
#ifndef VFK_FUZZ_FORMAT_H
#define VFK_FUZZ_FORMAT_H

#include <stdint.h>

/* ---- fuzz_proto ---- */

enum proto_sel {
	PF_HDR,              /* a: max_size (0 = UINT32_MAX) */
	PF_VERSION_DECODE,   /* payload; encode round trip checked */
	PF_VERSION_ENCODE,   /* payload: struct fields; a: buffer size */
	PF_DMA_MAP,          /* a & 1: has_fd */
	PF_DMA_UNMAP,
	PF_DEVICE_INFO_REQ,
	PF_DEVICE_INFO_REPLY,
	PF_REGION_INFO_REQ,
	PF_IO_FDS_REQ,
	PF_IRQ_INFO_REQ,
	PF_IRQ_INFO_REPLY,
	PF_IRQ_SET,          /* a % 300: nfds */
	PF_REGION_READ_REQ,  /* a: max_xfer */
	PF_REGION_WRITE_REQ, /* a: max_xfer */
	PF_REGION_READ_REPLY,  /* req = { offset c, region a, count b } */
	PF_REGION_WRITE_REPLY, /* req as above */
	PF_DMA_READ_REQ,     /* a: max_xfer */
	PF_DMA_WRITE_REQ,    /* a: max_xfer */
	PF_DMA_READ_REPLY,   /* req = { offset c, count b } */
	PF_DMA_WRITE_REPLY,  /* req as above */
	PF_WRITE_MULTI,
	PF_FEATURE,
	PF_CAPS_WALK,        /* a % 8192: base, b: first */
	PF_SPARSE,           /* c: region size */
	PF_CAPS_BUILD,       /* payload: caps to add; a % 8192: buffer, 1 + b % 255: base */
	PF_NSEL
};

#define PF_PARAMS 16u

/* ---- fuzz_server ---- */

/* cfg0 */
#define SF_XFER_MASK 0x03u      /* server max_data_xfer: default, 4096, 65536, 256 */
#define SF_RAW 0x04u            /* no handshake by the harness */
#define SF_CLIENT_XFER_SHIFT 3  /* client max_data_xfer_size: absent, 256, 4096, 65536 */
#define SF_CLIENT_XFER_MASK (3u << SF_CLIENT_XFER_SHIFT)
#define SF_CLIENT_NO_FDS 0x20u  /* client advertises max_msg_fds 0 */
#define SF_ALL_ONES 0x40u       /* dma-test: disabled BARs read all-ones */
#define SF_RESPONDER 0x80u      /* a client thread answers DMA requests */
/* cfg1 */
#define SF_RESP_MASK 0x03u      /* responder: valid, error, malformed, silent */
#define SF_RESP_VALID 0u
#define SF_RESP_ERROR 1u
#define SF_RESP_MALFORMED 2u
#define SF_RESP_SILENT 3u
#define SF_PAGE_64K 0x04u       /* dma-test assumes 64 KiB host pages */
#define SF_WRITE_MULTI 0x08u    /* client proposes write_multiple */
#define SF_MAPS_SHIFT 4         /* max_dma_maps: 0 default, else this many */
#define SF_MAPS_MASK 0x70u
/* The server runs vfk_server_run() (its io_uring loop where the kernel has
 * one) on a thread of its own instead of the harness calling dispatch; the
 * harness waits until each record is consumed and answers DMA requests
 * itself as SF_RESP_MASK says.  RF_RECONNECT, RF_NO_DRAIN are ignored. */
#define SF_RUN 0x80u

/* record ctl */
#define RF_FD_MASK 0x07u
#define RF_FD_NONE 0u
#define RF_FD_EVENTFD 1u
#define RF_FD_MEMFD 2u          /* read-write memfd of RF_MEMFD_SIZE bytes */
#define RF_FD_MEMFD_RO 3u       /* the same memfd, opened read-only */
#define RF_FD_2EVENTFD 4u
#define RF_FD_4EVENTFD 5u
#define RF_FD_PIPE 6u           /* not memory, not an eventfd */
#define RF_FD_MEMFD_EVENTFD 7u  /* a memfd and an eventfd */
#define RF_NO_DISPATCH 0x08u    /* glue with the next record */
#define RF_NO_DRAIN 0x10u       /* leave the replies in the socket for now */
/* Before this record the client disconnects and a new one connects (and
 * negotiates, unless SF_RAW).  An input with such a record is served from
 * a listening socket instead of one adopted connection. */
#define RF_RECONNECT 0x20u
/* Before this record the client writes 1 to the eventfds it passed with
 * the last record that carried any (an INTx unmask eventfd, say). */
#define RF_SIGNAL 0x40u

#define RF_MEMFD_SIZE 0x10000u
#define RF_HDR 3u

/* Ids the server gives its DMA_READ/DMA_WRITE requests (server.c). */
#define SF_SERVER_FIRST_ID 0x8000u

/* ---- fuzz_client ----
 *
 * fuzz_client input:
 *
 *   record*
 *   record := ctl(1) len(2, little-endian) bytes[len]
 *
 * A scripted server answers each request of a fixed client session (see
 * fuzz_client.c) with the next record: by default a reply to that request
 * (its id and command) carrying `bytes` as the payload.  CF_* bits in
 * `ctl` change that.  When the records run out, the server closes.
 */
#define CF_RAW 0x01u        /* bytes are a whole message, header included,
			     * sent in addition: the next record answers */
#define CF_ERROR 0x02u      /* an error reply; errno = bytes[0] (0: none) */
#define CF_SERVER_REQ 0x04u /* a server request with bytes as its payload
			     * (DMA_READ; with CF_WRITE DMA_WRITE), in
			     * addition: the next record answers */
#define CF_WRITE 0x08u
#define CF_FD 0x10u         /* a memfd of CF_MEMFD_SIZE bytes comes along */
#define CF_CLOSE 0x20u      /* close instead of answering */
#define CF_MEMFD_SIZE 0x10000u
#define CF_HDR 3u
/* The client's IOVA for its fd-less window (server DMA goes there). */
#define CF_DMA_IOVA 0x100000u
#define CF_DMA_SIZE 0x10000u

/* ---- fuzz_dispatch ----
 *
 * fuzz_dispatch input:
 *
 *   record*
 *   record := ctl(1) len(2, little-endian) bytes[len]
 *
 * Each record is one message to the server, header included (its size
 * field is set to the record's length unless DF_RAW_SIZE), with the fds
 * the low bits of ctl ask for.  A VERSION comes first unless the first
 * record has DF_RAW_START.
 */
#define DF_FD_MASK 0x07u   /* 0 none, 1 eventfd, 2 memfd, 3 read-only memfd,
			    * 4 two eventfds, 5 a pipe */
#define DF_RAW_SIZE 0x08u
#define DF_RAW_START 0x10u
#define DF_MEMFD_SIZE 0x10000u
#define DF_HDR 3u

#endif

/* SPDX-License-Identifier: MIT */
/*
 * vfiokit info SOCKET: what a vfio-user device says about itself, decoded
 * the way `lspci -vv` decodes config space, plus every region (flags, size,
 * offset, mmap areas) and every IRQ type.  --json gives the same as JSON.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <linux/pci_regs.h>

#include "tools.h"

static const char *region_name(unsigned i)
{
	static const char *n[] = { "BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5",
				   "ROM", "CONFIG", "VGA" };

	return i < 9 ? n[i] : "DEVICE-SPECIFIC";
}

static const char *irq_name(unsigned i)
{
	static const char *n[] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };

	return i < 5 ? n[i] : "OTHER";
}

static uint16_t rd16(const uint8_t *c, unsigned o)
{
	return (uint16_t)(c[o] | c[o + 1] << 8);
}

static uint32_t rd32(const uint8_t *c, unsigned o)
{
	return (uint32_t)c[o] | (uint32_t)c[o + 1] << 8 | (uint32_t)c[o + 2] << 16 |
	       (uint32_t)c[o + 3] << 24;
}

static const char *pm(bool b)
{
	return b ? "+" : "-";
}

static const char *cap_name(unsigned id)
{
	switch (id) {
	case PCI_CAP_ID_PM: return "Power Management";
	case PCI_CAP_ID_MSI: return "MSI";
	case PCI_CAP_ID_VNDR: return "Vendor Specific Information";
	case PCI_CAP_ID_EXP: return "Express";
	case PCI_CAP_ID_MSIX: return "MSI-X";
	case PCI_CAP_ID_AF: return "PCI Advanced Features";
	}
	return "Unknown";
}

static const char *ext_cap_name(unsigned id)
{
	switch (id) {
	case PCI_EXT_CAP_ID_ERR: return "Advanced Error Reporting";
	case PCI_EXT_CAP_ID_DSN: return "Device Serial Number";
	case PCI_EXT_CAP_ID_VNDR: return "Vendor Specific Information";
	case PCI_EXT_CAP_ID_DVSEC: return "Designated Vendor-Specific";
	}
	return "Unknown";
}

/* Append one capability's decoding to `out` (text) and `jc` (JSON). */
static void decode_cap(const uint8_t *c, unsigned off, unsigned id, FILE *out,
		       struct json_object *jc)
{
	uint16_t f;

	switch (id) {
	case PCI_CAP_ID_PM: {
		uint16_t pmc = rd16(c, off + PCI_PM_PMC), csr = rd16(c, off + PCI_PM_CTRL);

		fprintf(out, " version %u\n\t\tFlags: D1%s D2%s PME(D0%s,D3hot%s)\n"
			     "\t\tStatus: D%u NoSoftRst%s PME-Enable%s\n",
			pmc & PCI_PM_CAP_VER_MASK, pm(pmc & PCI_PM_CAP_D1),
			pm(pmc & PCI_PM_CAP_D2), pm(pmc & PCI_PM_CAP_PME_D0),
			pm(pmc & PCI_PM_CAP_PME_D3hot), csr & PCI_PM_CTRL_STATE_MASK,
			pm(csr & PCI_PM_CTRL_NO_SOFT_RESET), pm(csr & PCI_PM_CTRL_PME_ENABLE));
		json_object_object_add(jc, "version", json_object_new_int(pmc & 7));
		json_object_object_add(jc, "power_state", json_object_new_int(csr & 3));
		break;
	}
	case PCI_CAP_ID_MSI: {
		unsigned cap = 1u << ((rd16(c, off + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_QMASK) >> 1);
		unsigned en = 1u << ((rd16(c, off + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_QSIZE) >> 4);

		f = rd16(c, off + PCI_MSI_FLAGS);
		fprintf(out, ": Enable%s Count=%u/%u Maskable%s 64bit%s\n",
			pm(f & PCI_MSI_FLAGS_ENABLE), en, cap, pm(f & PCI_MSI_FLAGS_MASKBIT),
			pm(f & PCI_MSI_FLAGS_64BIT));
		json_object_object_add(jc, "enabled", json_object_new_boolean(f & PCI_MSI_FLAGS_ENABLE));
		json_object_object_add(jc, "vectors", json_object_new_int((int)cap));
		json_object_object_add(jc, "maskable", json_object_new_boolean(f & PCI_MSI_FLAGS_MASKBIT));
		json_object_object_add(jc, "64bit", json_object_new_boolean(f & PCI_MSI_FLAGS_64BIT));
		break;
	}
	case PCI_CAP_ID_MSIX: {
		uint32_t t = rd32(c, off + PCI_MSIX_TABLE), p = rd32(c, off + PCI_MSIX_PBA);

		f = rd16(c, off + PCI_MSIX_FLAGS);
		fprintf(out, ": Enable%s Count=%u Masked%s\n"
			     "\t\tVector table: BAR=%u offset=%08x\n\t\tPBA: BAR=%u offset=%08x\n",
			pm(f & PCI_MSIX_FLAGS_ENABLE), (f & PCI_MSIX_FLAGS_QSIZE) + 1,
			pm(f & PCI_MSIX_FLAGS_MASKALL), t & PCI_MSIX_TABLE_BIR,
			t & PCI_MSIX_TABLE_OFFSET, p & PCI_MSIX_PBA_BIR, p & PCI_MSIX_PBA_OFFSET);
		json_object_object_add(jc, "enabled", json_object_new_boolean(f & PCI_MSIX_FLAGS_ENABLE));
		json_object_object_add(jc, "vectors", json_object_new_int((f & PCI_MSIX_FLAGS_QSIZE) + 1));
		json_object_object_add(jc, "function_mask", json_object_new_boolean(f & PCI_MSIX_FLAGS_MASKALL));
		json_object_object_add(jc, "table_bar", json_object_new_int((int)(t & 7)));
		json_object_object_add(jc, "table_offset", json_object_new_int64(t & ~7u));
		json_object_object_add(jc, "pba_bar", json_object_new_int((int)(p & 7)));
		json_object_object_add(jc, "pba_offset", json_object_new_int64(p & ~7u));
		break;
	}
	case PCI_CAP_ID_EXP: {
		static const char *types[16] = { "Endpoint", "Legacy Endpoint", [4] = "Root Port",
						  [5] = "Upstream Port", [6] = "Downstream Port",
						  [9] = "Root Complex Integrated Endpoint" };
		uint16_t fl = rd16(c, off + PCI_EXP_FLAGS), ctl = rd16(c, off + PCI_EXP_DEVCTL);
		uint32_t dcap = rd32(c, off + PCI_EXP_DEVCAP), lcap = rd32(c, off + PCI_EXP_LNKCAP);
		unsigned type = (fl & PCI_EXP_FLAGS_TYPE) >> 4;

		fprintf(out, " (v%u) %s\n\t\tDevCap: MaxPayload %u bytes, FLReset%s\n"
			     "\t\tDevCtl: MaxPayload %u bytes, MaxReadReq %u bytes, RlxdOrd%s NoSnoop%s\n",
			fl & PCI_EXP_FLAGS_VERS, types[type] ? types[type] : "Unknown type",
			128u << (dcap & PCI_EXP_DEVCAP_PAYLOAD), pm(dcap & PCI_EXP_DEVCAP_FLR),
			128u << ((ctl & PCI_EXP_DEVCTL_PAYLOAD) >> 5),
			128u << ((ctl & PCI_EXP_DEVCTL_READRQ) >> 12),
			pm(ctl & PCI_EXP_DEVCTL_RELAX_EN), pm(ctl & PCI_EXP_DEVCTL_NOSNOOP_EN));
		if (lcap)
			fprintf(out, "\t\tLnkCap: Speed %sGT/s, Width x%u\n",
				(lcap & PCI_EXP_LNKCAP_SLS) == 1 ? "2.5" : "5+",
				(lcap & PCI_EXP_LNKCAP_MLW) >> 4);
		json_object_object_add(jc, "version", json_object_new_int(fl & PCI_EXP_FLAGS_VERS));
		json_object_object_add(jc, "type", json_object_new_string(types[type] ? types[type] : "unknown"));
		json_object_object_add(jc, "flr", json_object_new_boolean(dcap & PCI_EXP_DEVCAP_FLR));
		break;
	}
	case PCI_CAP_ID_VNDR:
		fprintf(out, ": Len=%02x\n", c[off + 2]);
		json_object_object_add(jc, "length", json_object_new_int(c[off + 2]));
		break;
	default:
		fprintf(out, "\n");
	}
}

/* `bar_size`: each BAR's size from its region (0: not implemented). */
static void decode_config(const uint8_t *c, size_t len, const uint64_t bar_size[6], FILE *out,
			  struct json_object *j)
{
	struct json_object *jcaps = json_object_new_array(), *jbars = json_object_new_array();
	uint16_t cmd = rd16(c, PCI_COMMAND), st = rd16(c, PCI_STATUS);
	uint32_t cls = rd32(c, PCI_CLASS_REVISION) >> 8;
	unsigned off, guard = 0;

	fprintf(out, "Device %04x:%04x class %06x (rev %02x)\n", rd16(c, PCI_VENDOR_ID),
		rd16(c, PCI_DEVICE_ID), cls, c[PCI_REVISION_ID]);
	fprintf(out, "\tSubsystem: %04x:%04x\n", rd16(c, PCI_SUBSYSTEM_VENDOR_ID),
		rd16(c, PCI_SUBSYSTEM_ID));
	fprintf(out, "\tControl: I/O%s Mem%s BusMaster%s ParErr%s SERR%s DisINTx%s\n",
		pm(cmd & PCI_COMMAND_IO), pm(cmd & PCI_COMMAND_MEMORY),
		pm(cmd & PCI_COMMAND_MASTER), pm(cmd & PCI_COMMAND_PARITY),
		pm(cmd & PCI_COMMAND_SERR), pm(cmd & PCI_COMMAND_INTX_DISABLE));
	fprintf(out, "\tStatus: Cap%s INTx%s\n", pm(st & PCI_STATUS_CAP_LIST),
		pm(st & PCI_STATUS_INTERRUPT));
	if (c[PCI_INTERRUPT_PIN])
		fprintf(out, "\tInterrupt: pin %c\n", 'A' + c[PCI_INTERRUPT_PIN] - 1);
	json_object_object_add(j, "vendor", json_object_new_int(rd16(c, PCI_VENDOR_ID)));
	json_object_object_add(j, "device", json_object_new_int(rd16(c, PCI_DEVICE_ID)));
	json_object_object_add(j, "class", json_object_new_int((int)cls));
	json_object_object_add(j, "revision", json_object_new_int(c[PCI_REVISION_ID]));
	json_object_object_add(j, "subsystem_vendor", json_object_new_int(rd16(c, PCI_SUBSYSTEM_VENDOR_ID)));
	json_object_object_add(j, "subsystem_device", json_object_new_int(rd16(c, PCI_SUBSYSTEM_ID)));
	json_object_object_add(j, "command", json_object_new_int(cmd));
	json_object_object_add(j, "status", json_object_new_int(st));
	json_object_object_add(j, "interrupt_pin", json_object_new_int(c[PCI_INTERRUPT_PIN]));

	/* Every implemented BAR, by the size its region reports: a BAR whose
	 * register reads 0 (not yet assigned) is there all the same. */
	for (unsigned b = 0; b < 6; b++) {
		uint32_t v = rd32(c, PCI_BASE_ADDRESS_0 + 4 * b);
		bool io = v & PCI_BASE_ADDRESS_SPACE_IO;
		bool is64 = !io && (v & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
		uint64_t addr = io ? v & (uint32_t)PCI_BASE_ADDRESS_IO_MASK
				   : v & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK;
		struct json_object *jb;
		char where[32];

		if (is64 && b < 5)
			addr |= (uint64_t)rd32(c, PCI_BASE_ADDRESS_0 + 4 * (b + 1)) << 32;
		if (!bar_size[b])
			continue;
		if (addr)
			snprintf(where, sizeof(where), "%llx", (unsigned long long)addr);
		else
			snprintf(where, sizeof(where), "<unassigned>");
		if (io)
			fprintf(out, "\tBAR%u: I/O ports at %s [size=%#llx]\n", b, where,
				(unsigned long long)bar_size[b]);
		else
			fprintf(out, "\tBAR%u: Memory at %s (%s, %sprefetchable) [size=%#llx]\n", b,
				where, is64 ? "64-bit" : "32-bit",
				(v & PCI_BASE_ADDRESS_MEM_PREFETCH) ? "" : "non-",
				(unsigned long long)bar_size[b]);
		jb = json_object_new_object();
		json_object_object_add(jb, "index", json_object_new_int((int)b));
		json_object_object_add(jb, "type", json_object_new_string(io ? "io" : "memory"));
		json_object_object_add(jb, "address", json_object_new_int64((int64_t)addr));
		json_object_object_add(jb, "size", json_object_new_int64((int64_t)bar_size[b]));
		if (!io) {
			json_object_object_add(jb, "bits", json_object_new_int(is64 ? 64 : 32));
			json_object_object_add(jb, "prefetchable", json_object_new_boolean(
				(v & PCI_BASE_ADDRESS_MEM_PREFETCH) != 0));
		}
		json_object_array_add(jbars, jb);
		if (is64)
			b++;
	}
	json_object_object_add(j, "bars", jbars);
	off = (st & PCI_STATUS_CAP_LIST) ? c[PCI_CAPABILITY_LIST] & ~3u : 0;
	while (off >= 0x40 && off + 2 <= 256 && guard++ < 48) {
		struct json_object *jc = json_object_new_object();
		unsigned id = c[off];

		fprintf(out, "\tCapabilities: [%02x] %s", off, cap_name(id));
		json_object_object_add(jc, "offset", json_object_new_int((int)off));
		json_object_object_add(jc, "id", json_object_new_int((int)id));
		json_object_object_add(jc, "name", json_object_new_string(cap_name(id)));
		decode_cap(c, off, id, out, jc);
		json_object_array_add(jcaps, jc);
		off = c[off + 1] & ~3u;
	}
	off = 0x100;
	guard = 0;
	while (len >= 0x104 && off >= 0x100 && off + 4 <= len && guard++ < 64) {
		uint32_t h = rd32(c, off);
		struct json_object *jc;

		if (!h)
			break;
		jc = json_object_new_object();
		fprintf(out, "\tCapabilities: [%03x v%u] %s", off, (h >> 16) & 0xf,
			ext_cap_name(h & 0xffff));
		if ((h & 0xffff) == PCI_EXT_CAP_ID_DSN && off + 12 <= len) {
			uint32_t lo = rd32(c, off + 4), hi = rd32(c, off + 8);

			fprintf(out, " %02x-%02x-%02x-%02x-%02x-%02x-%02x-%02x", hi >> 24,
				(hi >> 16) & 0xff, (hi >> 8) & 0xff, hi & 0xff, lo >> 24,
				(lo >> 16) & 0xff, (lo >> 8) & 0xff, lo & 0xff);
		}
		fprintf(out, "\n");
		json_object_object_add(jc, "offset", json_object_new_int((int)off));
		json_object_object_add(jc, "id", json_object_new_int((int)(h & 0xffff)));
		json_object_object_add(jc, "version", json_object_new_int((int)((h >> 16) & 0xf)));
		json_object_object_add(jc, "extended", json_object_new_boolean(1));
		json_object_object_add(jc, "name", json_object_new_string(ext_cap_name(h & 0xffff)));
		json_object_array_add(jcaps, jc);
		off = h >> 20;
	}
	json_object_object_add(j, "capabilities", jcaps);
}

static void flags_str(uint32_t f, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s%s", (f & VFK_REGION_FLAG_READ) ? "R" : "-",
		 (f & VFK_REGION_FLAG_WRITE) ? "W" : "-", (f & VFK_REGION_FLAG_MMAP) ? " MMAP" : "",
		 (f & VFK_REGION_FLAG_CAPS) ? " CAPS" : "");
}

static void info_usage(FILE *f)
{
	fprintf(f, "usage: vfiokit info SOCKET|PCI-ADDRESS [--json] [--timeout MS]\n\n"
		   "Connect to the vfio-user server at SOCKET (or open the PCI function\n"
		   "at PCI-ADDRESS through the kernel's VFIO) and describe its device:\n"
		   "config header and capabilities, regions (flags, size, mmap areas)\n"
		   "and IRQ types.  Nothing is written to the device.  A server\n"
		   "serves one client at a time: while another is connected, this\n"
		   "one is refused.\n");
}

int cmd_info(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct vfk_client_opts co = { .version = VFK_CLIENT_OPTS_VERSION,
				      .log = tool_log, .log_user = "client ",
				      .log_level = VFK_LOG_ERR };
	struct json_object *j, *jregions, *jirqs;
	struct vfk_device *dev;
	struct vfk_device_info di;
	struct vfk_session_info si;
	struct vfk_region_info cfg;
	uint8_t config[4096];
	uint64_t bar_size[6];
	bool json = false;
	FILE *out = stdout;
	char *text = NULL;
	size_t text_len = 0;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 't':
			co.timeout_ms = atoi(optarg);
			break;
		case 'h':
			info_usage(stdout);
			return 0;
		default:
			info_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		info_usage(stderr);
		return 2;
	}
	/* A PCI address (no '/', "DDDD:BB:SS.F" or "BB:SS.F") is a kernel
	 * VFIO device; anything else a socket path. */
	if (!strchr(argv[optind], '/') && strchr(argv[optind], ':') &&
	    strchr(argv[optind], '.') && access(argv[optind], F_OK) != 0)
		rc = vfk_device_open_pci(argv[optind], 0, &co, &dev);
	else
		rc = vfk_device_open_socket(argv[optind], &co, &dev);
	if (rc) {
		fprintf(stderr, "vfiokit info: cannot connect to %s: %s%s\n", argv[optind],
			vfk_strerror(rc),
			rc == -EBUSY ? " (the device is in use by another client)" : "");
		return 1;
	}
	if (json) {
		out = open_memstream(&text, &text_len);
		if (!out) {
			vfk_device_close(dev);
			return 1;
		}
	}
	j = json_object_new_object();
	vfk_device_session(dev, &si);
	rc = vfk_device_get_info(dev, &di);
	if (rc)
		goto fail;
	if (strcmp(vfk_device_transport(dev), "vfio-user"))
		fprintf(out, "kernel VFIO device %s (%s)\n", argv[optind],
			vfk_device_transport(dev));
	else
		fprintf(out, "vfio-user device at %s (protocol %u.%u, server max_data_xfer %u, "
			     "max_msg_fds %u)\n",
			argv[optind], si.major, si.minor, si.server_max_data_xfer,
			si.server_max_msg_fds);
	fprintf(out, "Device flags:%s%s, %u regions, %u IRQ types\n",
		(di.flags & VFK_DEVICE_FLAGS_PCI) ? " PCI" : "",
		(di.flags & VFK_DEVICE_FLAGS_RESET) ? " RESET" : "", di.num_regions, di.num_irqs);
	json_object_object_add(j, "socket", json_object_new_string(argv[optind]));
	json_object_object_add(j, "protocol", json_object_new_string(si.minor ? "0.x" : "0.0"));
	json_object_object_add(j, "flags", json_object_new_int((int)di.flags));
	json_object_object_add(j, "num_regions", json_object_new_int((int)di.num_regions));
	json_object_object_add(j, "num_irqs", json_object_new_int((int)di.num_irqs));

	rc = vfk_region_get_info(dev, VFK_PCI_CONFIG, &cfg);
	if (rc)
		goto fail;
	if (cfg.size < 64 || cfg.size > sizeof(config)) {
		rc = -EPROTO;
		goto fail;
	}
	rc = vfk_device_config_read(dev, 0, config, (size_t)cfg.size);
	if (rc)
		goto fail;
	for (unsigned b = 0; b < 6; b++) {
		struct vfk_region_info ri;

		bar_size[b] = 0;
		if (b < di.num_regions) {
			rc = vfk_region_get_info(dev, b, &ri);
			if (rc)
				goto fail;
			bar_size[b] = ri.size;
		}
	}
	{
		struct json_object *jcfg = json_object_new_object();

		decode_config(config, (size_t)cfg.size, bar_size, out, jcfg);
		json_object_object_add(j, "config", jcfg);
	}

	jregions = json_object_new_array();
	fprintf(out, "Regions:\n");
	for (uint32_t i = 0; i < di.num_regions; i++) {
		struct vfk_region_info ri;
		struct json_object *jr, *ja;
		char fl[32];

		rc = vfk_region_get_info(dev, i, &ri);
		if (rc)
			goto fail;
		if (!ri.size && !ri.flags)
			continue;
		flags_str(ri.flags, fl, sizeof(fl));
		fprintf(out, "  %u %-7s size %#-9llx flags %-14s offset %#llx", i, region_name(i),
			(unsigned long long)ri.size, fl, (unsigned long long)ri.offset);
		jr = json_object_new_object();
		ja = json_object_new_array();
		json_object_object_add(jr, "index", json_object_new_int((int)i));
		json_object_object_add(jr, "name", json_object_new_string(region_name(i)));
		json_object_object_add(jr, "size", json_object_new_int64((int64_t)ri.size));
		json_object_object_add(jr, "flags", json_object_new_int((int)ri.flags));
		json_object_object_add(jr, "offset", json_object_new_int64((int64_t)ri.offset));
		json_object_object_add(jr, "mappable", json_object_new_boolean(ri.mappable));
		if (ri.mappable) {
			fprintf(out, "\n      mmap:");
			for (unsigned a = 0; a < ri.nr_areas; a++) {
				struct json_object *jo = json_object_new_object();

				fprintf(out, " [%#llx, +%#llx)", (unsigned long long)ri.areas[a].offset,
					(unsigned long long)ri.areas[a].size);
				json_object_object_add(jo, "offset", json_object_new_int64((int64_t)ri.areas[a].offset));
				json_object_object_add(jo, "size", json_object_new_int64((int64_t)ri.areas[a].size));
				json_object_array_add(ja, jo);
			}
		}
		if (ri.msix_mappable)
			fprintf(out, " msix-mappable");
		if (ri.has_type)
			fprintf(out, " type %#x/%#x", ri.type, ri.subtype);
		fprintf(out, "\n");
		if (ri.has_layout) {
			fprintf(out, "      layout: fd offset %#llx, in-page offset %#x of %u-byte pages%s%s\n",
				(unsigned long long)ri.fd_offset, ri.in_page_offset, ri.page_size,
				(ri.layout_flags & VFK_LAYOUT_SUBPAGE) ? ", sub-page" : "",
				(ri.layout_flags & VFK_LAYOUT_EXCLUSIVE) ? ", pages exclusive"
									  : ", pages shared");
			json_object_object_add(jr, "fd_offset", json_object_new_int64((int64_t)ri.fd_offset));
			json_object_object_add(jr, "page_size", json_object_new_int((int)ri.page_size));
			json_object_object_add(jr, "in_page_offset", json_object_new_int((int)ri.in_page_offset));
			json_object_object_add(jr, "subpage", json_object_new_boolean(ri.layout_flags & VFK_LAYOUT_SUBPAGE));
			json_object_object_add(jr, "exclusive", json_object_new_boolean(ri.layout_flags & VFK_LAYOUT_EXCLUSIVE));
		}
		if (ri.has_attrs && i < 6 && (rd32(config, PCI_BASE_ADDRESS_0 + 4 * i) &
					      PCI_BASE_ADDRESS_SPACE_IO)) {
			/* I/O space: no prefetching, no mapping attributes. */
			fprintf(out, "      attrs: I/O space, decoding off: %s\n",
				(ri.attrs & VFK_ATTR_DISABLED_ONES) ? "all-ones" : "EIO");
			json_object_object_add(jr, "disabled_access", json_object_new_string(
				(ri.attrs & VFK_ATTR_DISABLED_ONES) ? "all-ones" : "eio"));
		} else if (ri.has_attrs) {
			const char *map = (ri.attrs & VFK_ATTR_MAP_CACHED) ? "cacheable, WC or UC"
					  : (ri.attrs & VFK_ATTR_MAP_WC) ? "WC or UC" : "UC only";

			fprintf(out, "      attrs: %sprefetchable, mappings %s, decoding off: %s%s",
				(ri.attrs & VFK_ATTR_PREFETCHABLE) ? "" : "non-", map,
				(ri.attrs & VFK_ATTR_DISABLED_ONES) ? "all-ones" : "EIO",
				(ri.attrs & VFK_ATTR_MAP_REVOKE) ? " (mapping revoked)" : "");
			if (ri.backed_size && ri.backed_size < ri.size)
				fprintf(out, ", memory %#llx of %#llx (rest reads all-ones)",
					(unsigned long long)ri.backed_size, (unsigned long long)ri.size);
			fprintf(out, "\n");
			json_object_object_add(jr, "prefetchable", json_object_new_boolean(ri.attrs & VFK_ATTR_PREFETCHABLE));
			json_object_object_add(jr, "map_wc", json_object_new_boolean(ri.attrs & VFK_ATTR_MAP_WC));
			json_object_object_add(jr, "map_cached", json_object_new_boolean(ri.attrs & VFK_ATTR_MAP_CACHED));
			json_object_object_add(jr, "disabled_access", json_object_new_string(
				(ri.attrs & VFK_ATTR_DISABLED_ONES) ? "all-ones" : "eio"));
			json_object_object_add(jr, "mapping_revoked_on_disable", json_object_new_boolean(ri.attrs & VFK_ATTR_MAP_REVOKE));
			json_object_object_add(jr, "backed_size", json_object_new_int64((int64_t)ri.backed_size));
		}
		json_object_object_add(jr, "mmap_areas", ja);
		json_object_object_add(jr, "msix_mappable", json_object_new_boolean(ri.msix_mappable));
		json_object_array_add(jregions, jr);
	}
	json_object_object_add(j, "regions", jregions);

	jirqs = json_object_new_array();
	fprintf(out, "IRQs:\n");
	for (uint32_t i = 0; i < di.num_irqs; i++) {
		struct vfk_irq_info ii;
		struct json_object *ji;

		rc = vfk_device_irq_info(dev, i, &ii);
		if (rc == -EINVAL) {
			fprintf(out, "  %u %-6s (none)\n", i, irq_name(i));
			continue;
		}
		if (rc)
			goto fail;
		fprintf(out, "  %u %-6s count %-4u flags%s%s%s%s\n", i, irq_name(i), ii.count,
			(ii.flags & VFK_IRQ_INFO_EVENTFD) ? " EVENTFD" : "",
			(ii.flags & VFK_IRQ_INFO_MASKABLE) ? " MASKABLE" : "",
			(ii.flags & VFK_IRQ_INFO_AUTOMASKED) ? " AUTOMASKED" : "",
			(ii.flags & VFK_IRQ_INFO_NORESIZE) ? " NORESIZE" : "");
		ji = json_object_new_object();
		json_object_object_add(ji, "index", json_object_new_int((int)i));
		json_object_object_add(ji, "name", json_object_new_string(irq_name(i)));
		json_object_object_add(ji, "count", json_object_new_int((int)ii.count));
		json_object_object_add(ji, "flags", json_object_new_int((int)ii.flags));
		json_object_array_add(jirqs, ji);
	}
	json_object_object_add(j, "irqs", jirqs);
	rc = 0;
fail:
	vfk_device_close(dev);
	if (json) {
		fclose(out);
		if (!rc)
			printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
									       JSON_C_TO_STRING_NOSLASHESCAPE));
		free(text);
	}
	json_object_put(j);
	if (rc) {
		fprintf(stderr, "vfiokit info: %s\n", vfk_strerror(rc));
		return 1;
	}
	return 0;
}

/*
 * pci-probe: small PCI inspection and BAR access tool for vfiokit's guest
 * tests.  It only uses sysfs (/sys/bus/pci/devices/BDF/...), so it works in
 * a busybox initramfs without pciutils.
 *
 * Build (static, so it runs in the busybox guest; from the repository root,
 * output into the directory that run-guest.sh --share gives the guest):
 *   gcc -static -O2 -Wall -Wextra -o SHARE_DIR/pci-probe tests/guest/pci-probe.c
 *
 * Usage:
 *   pci-probe find VENDOR:DEVICE          print the BDF of each match
 *                                         (hex ids, "*" matches any)
 *   pci-probe info BDF                    ids, class, BARs, capabilities
 *   pci-probe read BDF BAR OFFSET WIDTH   read a BAR (WIDTH 1, 2, 4 or 8)
 *   pci-probe write BDF BAR OFFSET WIDTH VALUE
 *   pci-probe dump BDF BAR OFFSET LENGTH  hex dump of a BAR range (32-bit reads)
 *   pci-probe fill BDF BAR OFFSET LENGTH VALUE
 *                                         32-bit writes of VALUE over a BAR range
 *                                         (back to back, e.g. to provoke write
 *                                         batching in the VMM)
 *   pci-probe cfgread BDF OFFSET WIDTH    read config space (WIDTH 1, 2 or 4)
 *   pci-probe cfgwrite BDF OFFSET WIDTH VALUE
 *   pci-probe enable BDF                  set memory and I/O decoding and
 *                                         bus mastering in COMMAND
 *   pci-probe dmabuf SIZE SECONDS         allocate a locked buffer of SIZE
 *                                         bytes (at most one page) in RAM,
 *                                         fill it with byte i = i ^ 0x5a,
 *                                         print "phys 0x..." and wait up to
 *                                         SECONDS for it to change; then
 *                                         print a hex dump of it
 *   pci-probe copybuf SIZE SECONDS [SKEW] source and destination buffers of
 *                                         SIZE bytes each, physically
 *                                         contiguous (one page, or a 2 MiB
 *                                         huge page when 2*SIZE+SKEW is
 *                                         larger), for a device that copies
 *                                         memory: prints "src 0x... dst 0x...",
 *                                         waits up to SECONDS for the
 *                                         destination to equal the source
 *   pci-probe rom BDF OFFSET LENGTH       hex bytes of the expansion ROM
 *                                         (enables the ROM BAR meanwhile)
 *
 * BDF may be given as 0000:00:03.0 or 00:03.0.  Numbers accept 0x prefixes.
 * read/write map sysfs resourceN (memory BARs) or use pread/pwrite on it
 * (I/O BARs); memory or I/O decoding is switched on in the COMMAND register
 * through sysfs config first when it is off.  If mapping resourceN fails,
 * /dev/mem is tried.  Values are printed as 0x-prefixed hex.
 * Exit status: 0 on success, 1 on failure (message on stderr), 2 on usage
 * errors.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SYSFS_PCI "/sys/bus/pci/devices"

/* Linux IORESOURCE_* flags as printed in sysfs "resource". */
#define RES_IO        0x00000100ULL
#define RES_MEM       0x00000200ULL
#define RES_PREFETCH  0x00002000ULL
#define RES_READONLY  0x00004000ULL
#define RES_MEM_64    0x00100000ULL
#define RES_DISABLED  0x10000000ULL
#define RES_UNSET     0x20000000ULL

#define CMD_IO        0x1
#define CMD_MEMORY    0x2
#define CMD_MASTER    0x4

static const char *prog = "pci-probe";

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
    fprintf(stderr,
            "usage: %s find VENDOR:DEVICE\n"
            "       %s info BDF\n"
            "       %s read BDF BAR OFFSET WIDTH\n"
            "       %s write BDF BAR OFFSET WIDTH VALUE\n"
            "       %s dump BDF BAR OFFSET LENGTH\n"
            "       %s fill BDF BAR OFFSET LENGTH VALUE\n"
            "       %s cfgread BDF OFFSET WIDTH\n"
            "       %s cfgwrite BDF OFFSET WIDTH VALUE\n"
            "       %s enable BDF\n"
            "       %s dmabuf SIZE SECONDS\n"
            "       %s copybuf SIZE SECONDS [SKEW]\n"
            "       %s rom BDF OFFSET LENGTH\n",
            prog, prog, prog, prog, prog, prog, prog, prog, prog, prog, prog, prog);
    exit(2);
}

static uint64_t parse_num(const char *s, const char *what)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        die("invalid %s '%s'", what, s);
    return v;
}

static unsigned parse_width(const char *s, bool allow8)
{
    uint64_t w = parse_num(s, "width");

    if (w != 1 && w != 2 && w != 4 && !(allow8 && w == 8))
        die("invalid width '%s': use 1, 2, 4%s (bytes)", s, allow8 ? " or 8" : "");
    return (unsigned)w;
}

/* Normalise "00:03.0" to "0000:00:03.0" and check that the device exists. */
static void norm_bdf(const char *in, char *out, size_t len)
{
    unsigned dom = 0, bus, dev, fn;
    char tail;
    char path[256];
    struct stat st;

    if (sscanf(in, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) == 4) {
        /* full form */
    } else if (sscanf(in, "%x:%x.%x%c", &bus, &dev, &fn, &tail) == 3) {
        dom = 0;
    } else {
        die("invalid BDF '%s' (want DDDD:BB:DD.F or BB:DD.F)", in);
    }
    if (bus > 0xff || dev > 0x1f || fn > 7)
        die("invalid BDF '%s'", in);
    snprintf(out, len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
    snprintf(path, sizeof(path), SYSFS_PCI "/%s", out);
    if (stat(path, &st) != 0)
        die("no PCI device %s (%s: %s)", out, path, strerror(errno));
}

static bool read_sysfs_hex(const char *bdf, const char *attr, unsigned long long *val)
{
    char path[256], buf[64];
    FILE *f;
    bool ok;

    snprintf(path, sizeof(path), SYSFS_PCI "/%s/%s", bdf, attr);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    ok = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    if (!ok)
        return false;
    *val = strtoull(buf, NULL, 0);
    return true;
}

/* Name of the driver bound to the device, or NULL. */
static const char *bound_driver(const char *bdf)
{
    static char link[256];
    char path[256];
    ssize_t l;

    snprintf(path, sizeof(path), SYSFS_PCI "/%s/driver", bdf);
    l = readlink(path, link, sizeof(link) - 1);
    if (l <= 0)
        return NULL;
    link[l] = '\0';
    return strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
}

/* ---------------------------------------------------------- config space */

static int open_config(const char *bdf, int flags)
{
    char path[256];
    int fd;

    snprintf(path, sizeof(path), SYSFS_PCI "/%s/config", bdf);
    fd = open(path, flags);
    if (fd < 0)
        die("cannot open %s: %s", path, strerror(errno));
    return fd;
}

static uint32_t cfg_read(const char *bdf, unsigned off, unsigned width)
{
    uint8_t b[4] = {0};
    int fd = open_config(bdf, O_RDONLY);
    ssize_t n = pread(fd, b, width, off);

    if (n != (ssize_t)width)
        die("config read of %u byte(s) at 0x%x on %s failed: %s", width, off, bdf,
            n < 0 ? strerror(errno) : "short read (offset beyond the readable config space?)");
    close(fd);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void cfg_write(const char *bdf, unsigned off, unsigned width, uint32_t val)
{
    uint8_t b[4] = { val & 0xff, (val >> 8) & 0xff, (val >> 16) & 0xff, (val >> 24) & 0xff };
    int fd = open_config(bdf, O_WRONLY);
    ssize_t n = pwrite(fd, b, width, off);

    if (n != (ssize_t)width)
        die("config write of %u byte(s) at 0x%x on %s failed: %s", width, off, bdf,
            n < 0 ? strerror(errno) : "short write");
    close(fd);
}

/* Read the whole readable config space (256 or 4096 bytes). */
static size_t cfg_read_all(const char *bdf, uint8_t *buf, size_t max)
{
    int fd = open_config(bdf, O_RDONLY);
    size_t got = 0;

    while (got < max) {
        ssize_t n = pread(fd, buf + got, max - got, got);
        if (n < 0)
            die("reading config space of %s: %s", bdf, strerror(errno));
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return got;
}

static void ensure_decoding(const char *bdf, uint16_t bits)
{
    uint16_t cmd = (uint16_t)cfg_read(bdf, 0x04, 2);

    if ((cmd & bits) == bits)
        return;
    cfg_write(bdf, 0x04, 2, cmd | bits);
    cmd = (uint16_t)cfg_read(bdf, 0x04, 2);
    if ((cmd & bits) != bits) {
        /* Fall back to the kernel's enable attribute. */
        char path[256];
        int fd;

        snprintf(path, sizeof(path), SYSFS_PCI "/%s/enable", bdf);
        fd = open(path, O_WRONLY);
        if (fd >= 0) {
            if (write(fd, "1", 1) < 0) { /* reported below */ }
            close(fd);
        }
        cmd = (uint16_t)cfg_read(bdf, 0x04, 2);
        if ((cmd & bits) != bits)
            die("cannot enable %s decoding on %s (COMMAND is 0x%04x)",
                (bits & CMD_MEMORY) ? "memory" : "I/O", bdf, cmd);
    }
}

/* ------------------------------------------------------------------ BARs */

struct resource {
    unsigned long long start, end, flags;
};

static int read_resources(const char *bdf, struct resource *res, int max)
{
    char path[256], line[256];
    FILE *f;
    int n = 0;

    snprintf(path, sizeof(path), SYSFS_PCI "/%s/resource", bdf);
    f = fopen(path, "r");
    if (f == NULL)
        die("cannot open %s: %s", path, strerror(errno));
    while (n < max && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%llx %llx %llx", &res[n].start, &res[n].end, &res[n].flags) != 3)
            break;
        n++;
    }
    fclose(f);
    return n;
}

static unsigned long long res_size(const struct resource *r)
{
    if (r->start == 0 && r->end == 0)
        return 0;
    return r->end - r->start + 1;
}

static void get_bar(const char *bdf, unsigned bar, struct resource *out)
{
    struct resource res[8];
    int n = read_resources(bdf, res, 8);

    if (bar > 5)
        die("invalid BAR %u (0-5)", bar);
    if ((int)bar >= n || res_size(&res[bar]) == 0)
        die("%s has no BAR %u", bdf, bar);
    *out = res[bar];
}

struct mapping {
    volatile uint8_t *base;   /* address of BAR offset 0 */
    void *map;
    size_t maplen;
};

static void map_bar(const char *bdf, unsigned bar, const struct resource *r,
                    unsigned long long off, size_t len, struct mapping *m)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long inpage = r->start & (unsigned long long)(page - 1);
    unsigned long long first = (inpage + off) & ~(unsigned long long)(page - 1);
    unsigned long long last = inpage + off + len;
    char path[256];
    int fd;

    m->maplen = (size_t)(((last + (unsigned long long)page - 1) & ~(unsigned long long)(page - 1)) - first);
    snprintf(path, sizeof(path), SYSFS_PCI "/%s/resource%u", bdf, bar);
    fd = open(path, O_RDWR | O_SYNC);
    if (fd >= 0) {
        /* resourceN maps from the page that contains the BAR's start. */
        m->map = mmap(NULL, m->maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)first);
        close(fd);
        if (m->map != MAP_FAILED) {
            m->base = (volatile uint8_t *)m->map - first + inpage;
            return;
        }
        fprintf(stderr, "%s: mmap of %s failed (%s), trying /dev/mem\n", prog, path,
                strerror(errno));
    } else {
        fprintf(stderr, "%s: cannot open %s (%s), trying /dev/mem\n", prog, path,
                strerror(errno));
    }
    fd = open("/dev/mem", O_RDWR | O_SYNC);
    if (fd < 0)
        die("cannot open /dev/mem: %s", strerror(errno));
    {
        unsigned long long phys = (r->start + off) & ~(unsigned long long)(page - 1);
        unsigned long long delta = r->start + off - phys;

        m->maplen = (size_t)((delta + len + (unsigned long long)page - 1) & ~(unsigned long long)(page - 1));
        m->map = mmap(NULL, m->maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)phys);
        close(fd);
        if (m->map == MAP_FAILED) {
            const char *drv = bound_driver(bdf);

            if (drv != NULL)
                die("cannot map BAR %u of %s through /dev/mem: %s; the device is bound to "
                    "driver %s, which claims its BARs: unbind it first "
                    "(echo %s > /sys/bus/pci/drivers/%s/unbind)",
                    bar, bdf, strerror(errno), drv, bdf, drv);
            die("cannot map BAR %u of %s through /dev/mem: %s", bar, bdf, strerror(errno));
        }
        m->base = (volatile uint8_t *)m->map + delta - off;
    }
}

static void check_range(const char *bdf, unsigned bar, const struct resource *r,
                        unsigned long long off, unsigned long long len)
{
    unsigned long long size = res_size(r);

    if (off >= size || len > size - off)
        die("offset 0x%llx + %llu is outside BAR %u of %s (size 0x%llx)",
            off, len, bar, bdf, size);
}

static uint64_t io_access(const char *bdf, unsigned bar, unsigned long long off,
                          unsigned width, bool write, uint64_t val)
{
    char path[256];
    uint8_t b[8] = {0};
    ssize_t n;
    int fd;

    if (width == 8)
        die("I/O BARs support widths 1, 2 and 4 only");
    snprintf(path, sizeof(path), SYSFS_PCI "/%s/resource%u", bdf, bar);
    fd = open(path, write ? O_WRONLY : O_RDONLY);
    if (fd < 0)
        die("cannot open %s: %s", path, strerror(errno));
    if (write) {
        memcpy(b, &val, width);  /* little-endian host */
        n = pwrite(fd, b, width, (off_t)off);
    } else {
        n = pread(fd, b, width, (off_t)off);
    }
    if (n != (ssize_t)width)
        die("I/O %s of %u byte(s) at 0x%llx in %s failed: %s", write ? "write" : "read",
            width, off, path, n < 0 ? strerror(errno) : "short transfer");
    close(fd);
    memcpy(&val, b, 8);
    return val;
}

static uint64_t mem_read(volatile uint8_t *p, unsigned width)
{
    switch (width) {
    case 1: return *(volatile uint8_t *)p;
    case 2: return *(volatile uint16_t *)p;
    case 4: return *(volatile uint32_t *)p;
    default: return *(volatile uint64_t *)p;
    }
}

static void mem_write(volatile uint8_t *p, unsigned width, uint64_t v)
{
    switch (width) {
    case 1: *(volatile uint8_t *)p = (uint8_t)v; break;
    case 2: *(volatile uint16_t *)p = (uint16_t)v; break;
    case 4: *(volatile uint32_t *)p = (uint32_t)v; break;
    default: *(volatile uint64_t *)p = v; break;
    }
    __sync_synchronize();
}

static int cmd_bar_access(const char *bdf, unsigned bar, unsigned long long off,
                          unsigned width, bool write, uint64_t val)
{
    struct resource r;
    struct mapping m;

    get_bar(bdf, bar, &r);
    check_range(bdf, bar, &r, off, width);
    if (off % width != 0)
        die("offset 0x%llx is not aligned to the width %u", off, width);
    if (width < 8 && val >> (width * 8) != 0)
        die("value 0x%" PRIx64 " does not fit in %u byte(s)", val, width);
    if (r.flags & RES_IO) {
        ensure_decoding(bdf, CMD_IO);
        val = io_access(bdf, bar, off, width, write, val);
    } else {
        ensure_decoding(bdf, CMD_MEMORY);
        map_bar(bdf, bar, &r, off, width, &m);
        if (write)
            mem_write(m.base + off, width, val);
        else
            val = mem_read(m.base + off, width);
        munmap(m.map, m.maplen);
    }
    if (!write)
        printf("0x%0*" PRIx64 "\n", (int)width * 2, val);
    return 0;
}

static int cmd_dump(const char *bdf, unsigned bar, unsigned long long off,
                    unsigned long long len)
{
    struct resource r;
    struct mapping m;
    unsigned long long i;

    get_bar(bdf, bar, &r);
    if (off % 4 != 0 || len % 4 != 0)
        die("dump wants a 4-byte aligned offset and length");
    check_range(bdf, bar, &r, off, len);
    if (r.flags & RES_IO) {
        ensure_decoding(bdf, CMD_IO);
        for (i = 0; i < len; i += 4) {
            if (i % 16 == 0)
                printf("%s%08llx:", i ? "\n" : "", off + i);
            printf(" %08" PRIx64, io_access(bdf, bar, off + i, 4, false, 0));
        }
    } else {
        ensure_decoding(bdf, CMD_MEMORY);
        map_bar(bdf, bar, &r, off, (size_t)len, &m);
        for (i = 0; i < len; i += 4) {
            if (i % 16 == 0)
                printf("%s%08llx:", i ? "\n" : "", off + i);
            printf(" %08" PRIx64, mem_read(m.base + off + i, 4));
        }
        munmap(m.map, m.maplen);
    }
    printf("\n");
    return 0;
}

static int cmd_fill(const char *bdf, unsigned bar, unsigned long long off,
                    unsigned long long len, uint64_t val)
{
    struct resource r;
    struct mapping m;
    unsigned long long i;

    get_bar(bdf, bar, &r);
    if (off % 4 != 0 || len % 4 != 0)
        die("fill wants a 4-byte aligned offset and length");
    if (val > 0xffffffffULL)
        die("fill value 0x%" PRIx64 " does not fit in 32 bits", val);
    check_range(bdf, bar, &r, off, len);
    if (r.flags & RES_IO) {
        ensure_decoding(bdf, CMD_IO);
        for (i = 0; i < len; i += 4)
            io_access(bdf, bar, off + i, 4, true, val);
    } else {
        ensure_decoding(bdf, CMD_MEMORY);
        map_bar(bdf, bar, &r, off, (size_t)len, &m);
        for (i = 0; i < len; i += 4)
            *(volatile uint32_t *)(m.base + off + i) = (uint32_t)val;
        __sync_synchronize();
        munmap(m.map, m.maplen);
    }
    return 0;
}

/* ------------------------------------------------------------------ find */

static int cmd_find(const char *spec)
{
    char vs[16], ds[16];
    const char *colon = strchr(spec, ':');
    bool any_v, any_d;
    unsigned long long v = 0, d = 0, dv, dd;
    DIR *dir;
    struct dirent *e;
    int found = 0;
    char *names[512];
    int n = 0, i;

    if (colon == NULL || colon == spec || colon[1] == '\0' ||
        (size_t)(colon - spec) >= sizeof(vs) || strlen(colon + 1) >= sizeof(ds))
        die("invalid id '%s' (want VENDOR:DEVICE in hex, e.g. 4e58:0001)", spec);
    memcpy(vs, spec, (size_t)(colon - spec));
    vs[colon - spec] = '\0';
    strcpy(ds, colon + 1);
    any_v = strcmp(vs, "*") == 0;
    any_d = strcmp(ds, "*") == 0;
    if (!any_v) {
        char *end;
        v = strtoull(vs, &end, 16);
        if (*end != '\0' || v > 0xffff)
            die("invalid vendor id '%s'", vs);
    }
    if (!any_d) {
        char *end;
        d = strtoull(ds, &end, 16);
        if (*end != '\0' || d > 0xffff)
            die("invalid device id '%s'", ds);
    }
    dir = opendir(SYSFS_PCI);
    if (dir == NULL)
        die("cannot open " SYSFS_PCI ": %s", strerror(errno));
    while ((e = readdir(dir)) != NULL && n < 512) {
        if (e->d_name[0] == '.')
            continue;
        if (!read_sysfs_hex(e->d_name, "vendor", &dv) || !read_sysfs_hex(e->d_name, "device", &dd))
            continue;
        if ((any_v || dv == v) && (any_d || dd == d))
            names[n++] = strdup(e->d_name);
    }
    closedir(dir);
    /* Stable output: sort by name. */
    for (i = 1; i < n; i++) {
        char *t = names[i];
        int j = i - 1;
        while (j >= 0 && strcmp(names[j], t) > 0) {
            names[j + 1] = names[j];
            j--;
        }
        names[j + 1] = t;
    }
    for (i = 0; i < n; i++) {
        printf("%s\n", names[i]);
        free(names[i]);
        found++;
    }
    if (!found) {
        fprintf(stderr, "%s: no PCI device %s\n", prog, spec);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ info */

static const char *cap_name(unsigned id)
{
    switch (id) {
    case 0x01: return "power-management";
    case 0x02: return "agp";
    case 0x03: return "vpd";
    case 0x04: return "slot-id";
    case 0x05: return "msi";
    case 0x06: return "hot-swap";
    case 0x07: return "pci-x";
    case 0x08: return "hypertransport";
    case 0x09: return "vendor-specific";
    case 0x0a: return "debug-port";
    case 0x0b: return "compactpci";
    case 0x0c: return "hot-plug";
    case 0x0d: return "bridge-subsystem-vendor";
    case 0x0e: return "agp-8x";
    case 0x0f: return "secure-device";
    case 0x10: return "pci-express";
    case 0x11: return "msi-x";
    case 0x12: return "sata";
    case 0x13: return "advanced-features";
    case 0x14: return "enhanced-allocation";
    case 0x15: return "flattening-portal-bridge";
    default: return "unknown";
    }
}

static const char *ecap_name(unsigned id)
{
    switch (id) {
    case 0x0001: return "aer";
    case 0x0002: return "virtual-channel";
    case 0x0003: return "serial-number";
    case 0x0004: return "power-budget";
    case 0x0005: return "root-complex-link";
    case 0x0006: return "root-complex-internal-link";
    case 0x0007: return "root-complex-event-collector";
    case 0x0008: return "mfvc";
    case 0x0009: return "virtual-channel-9";
    case 0x000a: return "rcrb";
    case 0x000b: return "vendor-specific";
    case 0x000c: return "cac";
    case 0x000d: return "acs";
    case 0x000e: return "ari";
    case 0x000f: return "ats";
    case 0x0010: return "sr-iov";
    case 0x0011: return "mr-iov";
    case 0x0012: return "multicast";
    case 0x0013: return "page-request";
    case 0x0015: return "resizable-bar";
    case 0x0016: return "dpa";
    case 0x0017: return "tph";
    case 0x0018: return "ltr";
    case 0x0019: return "secondary-pcie";
    case 0x001a: return "pmux";
    case 0x001b: return "pasid";
    case 0x001c: return "lnr";
    case 0x001d: return "dpc";
    case 0x001e: return "l1-pm-substates";
    case 0x001f: return "ptm";
    case 0x0023: return "dvsec";
    case 0x0025: return "data-link-feature";
    case 0x0026: return "physical-layer-16gt";
    case 0x0027: return "lane-margining";
    case 0x002a: return "physical-layer-32gt";
    case 0x002e: return "doe";
    default: return "unknown";
    }
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void print_cap_details(const uint8_t *cfg, size_t len, unsigned id, unsigned off)
{
    if (id == 0x11 && off + 12 <= len) {
        uint16_t ctrl = le16(cfg + off + 2);
        uint32_t table = le32(cfg + off + 4), pba = le32(cfg + off + 8);

        printf(" table_size=%u enabled=%u function_mask=%u table_bar=%u table_offset=0x%x"
               " pba_bar=%u pba_offset=0x%x",
               (ctrl & 0x7ff) + 1, !!(ctrl & 0x8000), !!(ctrl & 0x4000),
               table & 7, table & ~7u, pba & 7, pba & ~7u);
    } else if (id == 0x05 && off + 4 <= len) {
        uint16_t ctrl = le16(cfg + off + 2);

        printf(" enabled=%u vectors=%u/%u 64bit=%u per_vector_mask=%u",
               ctrl & 1, 1u << ((ctrl >> 4) & 7), 1u << ((ctrl >> 1) & 7),
               !!(ctrl & 0x80), !!(ctrl & 0x100));
    } else if (id == 0x10 && off + 4 <= len) {
        uint16_t flags = le16(cfg + off + 2);

        printf(" version=%u port_type=%u", flags & 0xf, (flags >> 4) & 0xf);
    } else if (id == 0x01 && off + 6 <= len) {
        printf(" version=%u state=D%u", le16(cfg + off + 2) & 7, le16(cfg + off + 4) & 3);
    } else if (id == 0x09 && off + 3 <= len) {
        printf(" length=%u", cfg[off + 2]);
    }
}

static void res_flags_str(unsigned long long fl, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s%s",
             (fl & RES_IO) ? "io" : (fl & RES_MEM) ? "mem" : "?",
             (fl & RES_MEM) ? ((fl & RES_MEM_64) ? " 64-bit" : " 32-bit") : "",
             (fl & RES_PREFETCH) ? " prefetchable" : ((fl & RES_MEM) ? " non-prefetchable" : ""),
             (fl & RES_READONLY) ? " read-only" : "",
             (fl & (RES_DISABLED | RES_UNSET)) ? " unassigned" : "");
}

static int cmd_info(const char *bdf)
{
    unsigned long long v;
    struct resource res[8];
    uint8_t cfg[4096];
    size_t len;
    int n, i;
    char fl[96];

    printf("bdf %s\n", bdf);
    if (read_sysfs_hex(bdf, "vendor", &v)) printf("vendor 0x%04llx\n", v);
    if (read_sysfs_hex(bdf, "device", &v)) printf("device 0x%04llx\n", v);
    if (read_sysfs_hex(bdf, "subsystem_vendor", &v)) printf("subsystem_vendor 0x%04llx\n", v);
    if (read_sysfs_hex(bdf, "subsystem_device", &v)) printf("subsystem_device 0x%04llx\n", v);
    if (read_sysfs_hex(bdf, "class", &v)) printf("class 0x%06llx\n", v);
    if (read_sysfs_hex(bdf, "revision", &v)) {
        printf("revision 0x%02llx\n", v);
    } else {
        printf("revision 0x%02x\n", cfg_read(bdf, 0x08, 1));
    }
    if (read_sysfs_hex(bdf, "irq", &v)) printf("irq %llu\n", v);
    printf("driver %s\n", bound_driver(bdf) ? bound_driver(bdf) : "none");

    n = read_resources(bdf, res, 8);
    for (i = 0; i < n && i <= 6; i++) {
        if (res_size(&res[i]) == 0)
            continue;
        res_flags_str(res[i].flags, fl, sizeof(fl));
        printf("%s%d start=0x%llx size=0x%llx flags=0x%llx (%s)\n",
               i == 6 ? "rom" : "bar", i == 6 ? 0 : i,
               res[i].start, res_size(&res[i]), res[i].flags, fl);
    }

    len = cfg_read_all(bdf, cfg, sizeof(cfg));
    printf("config_size %zu\n", len);
    if (len >= 0x40) {
        printf("command 0x%04x status 0x%04x header_type 0x%02x\n",
               le16(cfg + 4), le16(cfg + 6), cfg[0x0e]);
    }
    if (len >= 0x40 && (le16(cfg + 6) & 0x10)) {
        unsigned off = cfg[0x34] & 0xfc;
        int guard = 0;

        while (off >= 0x40 && off + 2 <= len && guard++ < 48) {
            unsigned id = cfg[off];
            printf("cap 0x%02x %s offset=0x%02x", id, cap_name(id), off);
            print_cap_details(cfg, len, id, off);
            printf("\n");
            off = cfg[off + 1] & 0xfc;
        }
        if (guard >= 48)
            printf("cap-list-loop detected\n");
    }
    if (len > 0x100) {
        unsigned off = 0x100;
        int guard = 0;

        while (off >= 0x100 && off + 4 <= len && guard++ < 512) {
            uint32_t h = le32(cfg + off);
            if (h == 0 || h == 0xffffffffu)
                break;
            printf("ecap 0x%04x %s offset=0x%03x version=%u\n",
                   h & 0xffff, ecap_name(h & 0xffff), off, (h >> 16) & 0xf);
            off = (h >> 20) & 0xffc;
            if (off == 0)
                break;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- dmabuf */

/* Physical address of the page holding `p` (0 if hidden or absent). */
static uint64_t phys_of(int pagemap_fd, const void *p, long page)
{
    uint64_t entry;
    off_t at = (off_t)((uintptr_t)p / (uintptr_t)page * 8);

    if (pread(pagemap_fd, &entry, sizeof(entry), at) != sizeof(entry))
        die("cannot read /proc/self/pagemap: %s", strerror(errno));
    if (!(entry & (1ULL << 63)) || (entry & ((1ULL << 55) - 1)) == 0)
        return 0;
    return (entry & ((1ULL << 55) - 1)) * (uint64_t)page;
}

static int cmd_dmabuf(unsigned long long size, unsigned long long seconds)
{
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *buf, *orig;
    uint64_t phys;
    int fd;
    unsigned long long i;
    time_t deadline, stable_since = 0;
    bool changed = false;

    if (size == 0 || size > (unsigned long long)page)
        die("dmabuf size must be 1..%ld", page);
    buf = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
    if (buf == MAP_FAILED)
        die("cannot allocate a locked page: %s", strerror(errno));
    if (mlock(buf, (size_t)page) != 0)
        die("mlock: %s", strerror(errno));
    orig = malloc((size_t)size);
    if (orig == NULL)
        die("out of memory");
    for (i = 0; i < size; i++)
        buf[i] = orig[i] = (uint8_t)(i ^ 0x5a);
    fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        die("cannot open /proc/self/pagemap: %s", strerror(errno));
    phys = phys_of(fd, buf, page);
    close(fd);
    if (phys == 0)
        die("page not present or PFN hidden (need root)");
    printf("phys 0x%" PRIx64 "\n", phys);
    fflush(stdout);

    /* Wait until the contents change and then stay unchanged for 1 s. */
    deadline = time(NULL) + (time_t)seconds;
    while (time(NULL) < deadline) {
        static uint8_t last[4096];
        bool now = memcmp(buf, orig, (size_t)size) != 0;

        if (now) {
            if (!changed || memcmp(last, buf, (size_t)size) != 0) {
                memcpy(last, buf, (size_t)size);
                stable_since = time(NULL);
            } else if (time(NULL) - stable_since >= 1) {
                break;
            }
            changed = true;
        }
        usleep(50000);
    }
    printf("changed %s\n", changed ? "yes" : "no");
    for (i = 0; i < size; i++) {
        if (i % 16 == 0)
            printf("%s%04llx:", i ? "\n" : "", i);
        printf(" %02x", buf[i]);
    }
    printf("\n");
    return changed ? 0 : 1;
}

/* --------------------------------------------------------------- copybuf */

/*
 * A huge page when the buffers do not fit in one small page, so that a
 * device copying several pages sees physically contiguous memory.  The
 * guest starts without reserved huge pages; reserve one more on demand.
 */
static uint8_t *alloc_contiguous(size_t len, size_t *maplen)
{
    long page = sysconf(_SC_PAGESIZE);
    const size_t huge = 2u << 20;
    uint8_t *buf;

    if (len <= (size_t)page) {
        *maplen = (size_t)page;
        buf = mmap(NULL, *maplen, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
        if (buf == MAP_FAILED)
            die("cannot allocate a locked page: %s", strerror(errno));
        return buf;
    }
    if (len > huge)
        die("copybuf: 2*SIZE+SKEW must be at most 2 MiB");
    *maplen = huge;
    for (int attempt = 0; attempt < 2; attempt++) {
        buf = mmap(NULL, huge, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE | MAP_LOCKED,
                   -1, 0);
        if (buf != MAP_FAILED)
            return buf;
        if (attempt == 0) {
            unsigned long long n = 0;
            FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r+");

            if (f == NULL)
                break;
            if (fscanf(f, "%llu", &n) != 1)
                n = 0;
            rewind(f);
            fprintf(f, "%llu\n", n + 1);
            fclose(f);
        }
    }
    die("cannot allocate a 2 MiB huge page: %s (check /proc/sys/vm/nr_hugepages)",
        strerror(errno));
}

static int cmd_copybuf(unsigned long long size, unsigned long long seconds,
                       unsigned long long skew)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t len, maplen, i;
    uint8_t *buf, *src, *dst, *orig;
    uint64_t psrc, pdst, seed;
    time_t deadline;
    bool match = false;
    int fd;

    if (size == 0 || skew >= (unsigned long long)page || size > (1u << 20))
        die("copybuf wants 1 <= SIZE <= 1 MiB and SKEW < %ld", page);
    len = (size_t)(2 * size + skew);
    buf = alloc_contiguous(len, &maplen);
    src = buf + skew;
    dst = buf + skew + size;
    orig = malloc((size_t)size);
    if (orig == NULL)
        die("out of memory");
    /* Random source, destination its complement: every byte must change,
     * and a copy from the wrong place cannot match by accident. */
    seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid() << 16 ^ size;
    for (i = 0; i < size; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        src[i] = orig[i] = (uint8_t)(seed >> 24);
        dst[i] = (uint8_t)~src[i];
    }
    fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        die("cannot open /proc/self/pagemap: %s", strerror(errno));
    psrc = phys_of(fd, buf, page);
    if (psrc == 0)
        die("page not present or PFN hidden (need root)");
    for (i = (size_t)page; i < maplen && i < len + (size_t)page; i += (size_t)page) {
        if (phys_of(fd, buf + i, page) != psrc + i)
            die("buffer is not physically contiguous at +0x%zx", i);
    }
    close(fd);
    pdst = psrc + skew + size;
    psrc += skew;
    printf("src 0x%" PRIx64 " dst 0x%" PRIx64 " size %llu\n", psrc, pdst, size);
    fflush(stdout);

    deadline = time(NULL) + (time_t)seconds;
    do {
        if (memcmp((const void *)dst, orig, (size_t)size) == 0) {
            match = true;
            break;
        }
        usleep(20000);
    } while (time(NULL) < deadline);
    printf("match %s\n", match ? "yes" : "no");
    if (!match) {
        size_t diffs = 0, first = 0;

        for (i = 0; i < size; i++) {
            if (dst[i] != orig[i] && diffs++ == 0)
                first = i;
        }
        printf("differing %zu first +0x%zx got 0x%02x want 0x%02x\n", diffs, first,
               dst[first], orig[first]);
    }
    printf("src-intact %s\n", memcmp(src, orig, (size_t)size) == 0 ? "yes" : "no");
    return match && memcmp(src, orig, (size_t)size) == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------- rom */

/*
 * The expansion ROM through /dev/mem: sysfs "rom" refuses images without
 * the 0xaa55 signature, and a device's ROM need not have one.  The ROM BAR
 * decodes only while its enable bit is set, so set it for the read.
 */
static int cmd_rom(const char *bdf, unsigned long long off, unsigned long long len)
{
    long page = sysconf(_SC_PAGESIZE);
    struct resource res[8];
    int n = read_resources(bdf, res, 8);
    unsigned long long size, phys, delta;
    uint32_t orig;
    size_t maplen;
    uint8_t *map;
    int fd;

    if (n < 7 || (size = res_size(&res[6])) == 0)
        die("%s has no expansion ROM", bdf);
    if (off >= size || len > size - off || len == 0)
        die("offset 0x%llx + %llu is outside the ROM of %s (size 0x%llx)", off, len, bdf, size);
    ensure_decoding(bdf, CMD_MEMORY);
    orig = cfg_read(bdf, 0x30, 4);
    cfg_write(bdf, 0x30, 4, (uint32_t)(res[6].start & ~0x7ffULL) | 1);
    phys = (res[6].start + off) & ~(unsigned long long)(page - 1);
    delta = res[6].start + off - phys;
    maplen = (size_t)((delta + len + (unsigned long long)page - 1) & ~(unsigned long long)(page - 1));
    fd = open("/dev/mem", O_RDONLY | O_SYNC);
    if (fd < 0)
        die("cannot open /dev/mem: %s", strerror(errno));
    map = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, (off_t)phys);
    close(fd);
    if (map == MAP_FAILED) {
        cfg_write(bdf, 0x30, 4, orig);
        die("cannot map the ROM of %s through /dev/mem: %s", bdf, strerror(errno));
    }
    for (unsigned long long i = 0; i < len; i++)
        printf("%s%02x", i ? " " : "", *(volatile uint8_t *)(map + delta + i));
    printf("\n");
    munmap(map, maplen);
    cfg_write(bdf, 0x30, 4, orig);
    return 0;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    char bdf[32];
    const char *cmd;

    if (argc < 2)
        usage();
    cmd = argv[1];

    if (strcmp(cmd, "find") == 0 && argc == 3)
        return cmd_find(argv[2]);
    if (strcmp(cmd, "dmabuf") == 0 && argc == 4)
        return cmd_dmabuf(parse_num(argv[2], "size"), parse_num(argv[3], "seconds"));
    if (strcmp(cmd, "copybuf") == 0 && (argc == 4 || argc == 5))
        return cmd_copybuf(parse_num(argv[2], "size"), parse_num(argv[3], "seconds"),
                           argc == 5 ? parse_num(argv[4], "skew") : 0);
    if (argc < 3 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
        usage();
    if (strcmp(cmd, "rom") == 0 && argc == 5) {
        norm_bdf(argv[2], bdf, sizeof(bdf));
        return cmd_rom(bdf, parse_num(argv[3], "offset"), parse_num(argv[4], "length"));
    }
    if (strcmp(cmd, "info") == 0 && argc == 3) {
        norm_bdf(argv[2], bdf, sizeof(bdf));
        return cmd_info(bdf);
    }
    if (strcmp(cmd, "enable") == 0 && argc == 3) {
        norm_bdf(argv[2], bdf, sizeof(bdf));
        ensure_decoding(bdf, CMD_MEMORY | CMD_IO | CMD_MASTER);
        return 0;
    }
    if ((strcmp(cmd, "read") == 0 && argc == 6) || (strcmp(cmd, "write") == 0 && argc == 7)) {
        bool write = cmd[0] == 'w';
        unsigned bar;
        unsigned long long off;
        unsigned width;
        uint64_t val = 0;

        norm_bdf(argv[2], bdf, sizeof(bdf));
        bar = (unsigned)parse_num(argv[3], "BAR");
        off = parse_num(argv[4], "offset");
        width = parse_width(argv[5], true);
        if (write)
            val = parse_num(argv[6], "value");
        return cmd_bar_access(bdf, bar, off, width, write, val);
    }
    if (strcmp(cmd, "dump") == 0 && argc == 6) {
        norm_bdf(argv[2], bdf, sizeof(bdf));
        return cmd_dump(bdf, (unsigned)parse_num(argv[3], "BAR"),
                        parse_num(argv[4], "offset"), parse_num(argv[5], "length"));
    }
    if (strcmp(cmd, "fill") == 0 && argc == 7) {
        norm_bdf(argv[2], bdf, sizeof(bdf));
        return cmd_fill(bdf, (unsigned)parse_num(argv[3], "BAR"), parse_num(argv[4], "offset"),
                        parse_num(argv[5], "length"), parse_num(argv[6], "value"));
    }
    if ((strcmp(cmd, "cfgread") == 0 && argc == 5) || (strcmp(cmd, "cfgwrite") == 0 && argc == 6)) {
        bool write = cmd[3] == 'w';
        unsigned long long off;
        unsigned width;

        norm_bdf(argv[2], bdf, sizeof(bdf));
        off = parse_num(argv[3], "offset");
        width = parse_width(argv[4], false);
        if (off > 4095 || off % width != 0)
            die("invalid config offset 0x%llx for width %u", off, width);
        if (write) {
            uint64_t val = parse_num(argv[5], "value");
            if (val >> (width * 8) != 0)
                die("value 0x%" PRIx64 " does not fit in %u byte(s)", val, width);
            cfg_write(bdf, (unsigned)off, width, (uint32_t)val);
        } else {
            printf("0x%0*x\n", (int)width * 2, cfg_read(bdf, (unsigned)off, width));
        }
        return 0;
    }
    usage();
}

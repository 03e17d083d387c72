/* SPDX-License-Identifier: MIT */
/*
 * The parts of the kernel's VFIO and iommufd ABI that Debian 12's headers
 * (Linux 6.1) lack: the VFIO device cdev ioctls and <linux/iommufd.h>.
 * Values checked against include/uapi/linux/vfio.h and iommufd.h of
 * Linux mainline.  The structures carry a vfk_ prefix so that a newer
 * <linux/vfio.h> that has its own cannot clash; the sizes are asserted.
 * Only the leading, stable part of each structure is declared: the kernel
 * accepts any argsz/size from the structure's first version on.
 */
#ifndef VFK_CLIENT_KERNEL_UAPI_H
#define VFK_CLIENT_KERNEL_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <stddef.h>

/* ---- VFIO device cdev (/dev/vfio/devices/vfioN) ---- */

struct vfk_vfio_bind_iommufd {
	__u32 argsz;
	__u32 flags;
	__s32 iommufd;
	__u32 out_devid;
};
#define VFK_VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)

struct vfk_vfio_attach_pt {
	__u32 argsz;
	__u32 flags;
	__u32 pt_id;
};
#define VFK_VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)

struct vfk_vfio_detach_pt {
	__u32 argsz;
	__u32 flags;
};
#define VFK_VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)

/* ---- iommufd (/dev/iommu) ---- */

#define VFK_IOMMUFD_TYPE (';')

struct vfk_iommu_destroy {
	__u32 size;
	__u32 id;
};
#define VFK_IOMMU_DESTROY _IO(VFK_IOMMUFD_TYPE, 0x80)

struct vfk_iommu_ioas_alloc {
	__u32 size;
	__u32 flags;
	__u32 out_ioas_id;
};
#define VFK_IOMMU_IOAS_ALLOC _IO(VFK_IOMMUFD_TYPE, 0x81)

struct vfk_iommu_iova_range {
	__aligned_u64 start;
	__aligned_u64 last;
};

/* EMSGSIZE with num_iovas set to the count needed when too small. */
struct vfk_iommu_ioas_iova_ranges {
	__u32 size;
	__u32 ioas_id;
	__u32 num_iovas;
	__u32 __reserved;
	__aligned_u64 allowed_iovas;
	__aligned_u64 out_iova_alignment;
};
#define VFK_IOMMU_IOAS_IOVA_RANGES _IO(VFK_IOMMUFD_TYPE, 0x84)

#define VFK_IOMMU_IOAS_MAP_FIXED_IOVA (1u << 0)
#define VFK_IOMMU_IOAS_MAP_WRITEABLE (1u << 1)
#define VFK_IOMMU_IOAS_MAP_READABLE (1u << 2)
struct vfk_iommu_ioas_map {
	__u32 size;
	__u32 flags;
	__u32 ioas_id;
	__u32 __reserved;
	__aligned_u64 user_va;
	__aligned_u64 length;
	__aligned_u64 iova;
};
#define VFK_IOMMU_IOAS_MAP _IO(VFK_IOMMUFD_TYPE, 0x85)

/* iova 0 and length UINT64_MAX unmap everything; length returns the bytes
 * unmapped. */
struct vfk_iommu_ioas_unmap {
	__u32 size;
	__u32 ioas_id;
	__aligned_u64 iova;
	__aligned_u64 length;
};
#define VFK_IOMMU_IOAS_UNMAP _IO(VFK_IOMMUFD_TYPE, 0x86)

_Static_assert(sizeof(struct vfk_vfio_bind_iommufd) == 16, "bind_iommufd");
_Static_assert(sizeof(struct vfk_vfio_attach_pt) == 12, "attach_iommufd_pt");
_Static_assert(sizeof(struct vfk_vfio_detach_pt) == 8, "detach_iommufd_pt");
_Static_assert(sizeof(struct vfk_iommu_destroy) == 8, "iommu_destroy");
_Static_assert(sizeof(struct vfk_iommu_ioas_alloc) == 12, "ioas_alloc");
_Static_assert(sizeof(struct vfk_iommu_iova_range) == 16, "iova_range");
_Static_assert(sizeof(struct vfk_iommu_ioas_iova_ranges) == 32, "ioas_iova_ranges");
_Static_assert(offsetof(struct vfk_iommu_ioas_iova_ranges, allowed_iovas) == 16,
	       "ioas_iova_ranges layout");
_Static_assert(sizeof(struct vfk_iommu_ioas_map) == 40, "ioas_map");
_Static_assert(offsetof(struct vfk_iommu_ioas_map, user_va) == 16, "ioas_map layout");
_Static_assert(sizeof(struct vfk_iommu_ioas_unmap) == 24, "ioas_unmap");
/* The numbers themselves, as the kernel computes them: _IO(';', nr). */
_Static_assert(VFK_IOMMU_IOAS_ALLOC == 0x3b81, "IOMMU_IOAS_ALLOC");
_Static_assert(VFK_IOMMU_IOAS_MAP == 0x3b85, "IOMMU_IOAS_MAP");
_Static_assert(VFK_VFIO_DEVICE_BIND_IOMMUFD == 0x3b76, "VFIO_DEVICE_BIND_IOMMUFD");
_Static_assert(VFK_VFIO_DEVICE_ATTACH_IOMMUFD_PT == 0x3b77, "ATTACH_IOMMUFD_PT");
/* The type1 structures this code relies on, from <linux/vfio.h>. */
_Static_assert(sizeof(struct vfio_region_info) == 32, "vfio_region_info");
_Static_assert(sizeof(struct vfio_irq_set) == 20, "vfio_irq_set");
_Static_assert(offsetof(struct vfio_iommu_type1_info, cap_offset) == 16,
	       "vfio_iommu_type1_info");
_Static_assert(sizeof(struct vfio_iommu_type1_dma_map) == 32, "dma_map");

#endif

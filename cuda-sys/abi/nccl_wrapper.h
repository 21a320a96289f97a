/* Input to bindgen for the NCCL bindings (see docs/abi.md). Not compiled into anything. */

/* nccl.h declares ncclResetDebugInit only when NCCL_OS_LINUX is defined (NCCL's own build defines it). */
#define NCCL_OS_LINUX 1
/* nccl.h includes cuda_fp16.h and cuda_bf16.h but uses nothing from them; they need CCCL's <nv/target>, which the
 * pinned wheels do not ship. Their include guards keep them out. */
#define __CUDA_FP16_H__
#define __CUDA_BF16_H__
#include <nccl.h>

/* The host half of NCCL's device API (ncclDevCommCreate, ncclTeam*, window pointer queries, resource
 * requirements): C declarations that libnccl.so.2 exports. */
#include <nccl_device/host.h>

/* Exported by the Linux libnccl.so.2 but declared in host.h only for Windows. Their handle structs are defined
 * in a GIN header NVIDIA does not ship for Linux: they are only ever passed by pointer, so they stay opaque. */
struct ncclGinOutboxHandle;
struct ncclGinInboxA2AHandle;
ncclResult_t ncclGinOutboxCreateRequirement(int nBlocks, int size_log2, struct ncclGinOutboxHandle *outHandle,
                                            ncclDevResourceRequirements_t *outReq);
ncclResult_t ncclGinInboxA2ACreateRequirement(ncclTeam_t peers, int nBlocks, int size_log2,
                                              struct ncclGinInboxA2AHandle *outHandle,
                                              ncclDevResourceRequirements_t *outReq);

/* NCCL's non-deprecated twin of ncclResetDebugInit (src/debug.cc); exported without a pncclX alias and not
 * declared in any header. */
void ncclResetDebugInitInternal(void);

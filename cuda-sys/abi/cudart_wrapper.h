/* Input to bindgen for the CUDA runtime bindings (see docs/abi.md). Not compiled into anything. */
#include <cuda_runtime_api.h>

/* cuda_profiler_api.h ships in a separate wheel; these two are all it adds to libcudart. */
cudaError_t cudaProfilerStart(void);
cudaError_t cudaProfilerStop(void);

/* Entry points that nvcc's generated host code calls. NVIDIA declares them only inside nvcc's own headers,
 * behind compiler-specific macros, so Phantom states their C signatures here. */
#ifdef __cplusplus
extern "C" {
#endif
void **__cudaRegisterFatBinary(void *fat_cubin);
void __cudaRegisterFatBinaryEnd(void **handle);
void __cudaUnregisterFatBinary(void **handle);
void __cudaRegisterVar(void **handle, char *host_var, char *device_address, const char *device_name,
                       int ext, size_t size, int constant, int global);
void __cudaRegisterManagedVar(void **handle, void **host_var_ptr_address, char *device_address,
                              const char *device_name, int ext, size_t size, int constant, int global);
char __cudaInitModule(void **handle);
void __cudaRegisterFunction(void **handle, const char *host_fun, char *device_fun, const char *device_name,
                            int thread_limit, uint3 *tid, uint3 *bid, dim3 *block_dim, dim3 *grid_dim,
                            int *warp_size);
unsigned __cudaPushCallConfiguration(dim3 grid_dim, dim3 block_dim, size_t shared_mem, cudaStream_t stream);
cudaError_t __cudaPopCallConfiguration(dim3 *grid_dim, dim3 *block_dim, size_t *shared_mem, void *stream);
cudaError_t __cudaGetKernel(cudaKernel_t *kernel, const void *host_fun);
cudaError_t __cudaLaunchKernel(cudaKernel_t kernel, dim3 grid_dim, dim3 block_dim, void **args,
                               size_t shared_mem, cudaStream_t stream);
cudaError_t __cudaLaunchKernel_ptsz(cudaKernel_t kernel, dim3 grid_dim, dim3 block_dim, void **args,
                                    size_t shared_mem, cudaStream_t stream);
#ifdef __cplusplus
}
#endif

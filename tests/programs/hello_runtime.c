/* Basic CUDA runtime calls from plain C, compiled against NVIDIA's headers and linked against libcudart.so.
 * Prints `name=value` lines; the test (tests/tests/e2e/programs.rs) checks them. Exit status 1 if any call
 * returned an error. */
#include <stdio.h>
#include <cuda_runtime_api.h>

static int failures = 0;

static void check(const char *call, cudaError_t err) {
    printf("%s=%d\n", call, (int)err);
    if (err != cudaSuccess) failures++;
}

int main(void) {
    int runtime_version = -1, driver_version = -1, count = -1;
    check("cudaRuntimeGetVersion", cudaRuntimeGetVersion(&runtime_version));
    check("cudaDriverGetVersion", cudaDriverGetVersion(&driver_version));
    check("cudaGetDeviceCount", cudaGetDeviceCount(&count));
    printf("runtime_version=%d\n", runtime_version);
    printf("driver_version=%d\n", driver_version);
    printf("device_count=%d\n", count);

    check("cudaSetDevice", cudaSetDevice(0));
    struct cudaDeviceProp prop;
    check("cudaGetDeviceProperties", cudaGetDeviceProperties(&prop, 0));
    printf("name=%s\n", prop.name);
    printf("multiProcessorCount=%d\n", prop.multiProcessorCount);
    printf("cc=%d.%d\n", prop.major, prop.minor);
    printf("totalGlobalMem=%zu\n", prop.totalGlobalMem);

    void *p = NULL;
    check("cudaMalloc", cudaMalloc(&p, 1 << 20));
    printf("pointer_nonnull=%d\n", p != NULL);
    check("cudaMemset", cudaMemset(p, 0, 1 << 20));
    check("cudaFree", cudaFree(p));
    check("cudaDeviceSynchronize", cudaDeviceSynchronize());
    return failures ? 1 : 0;
}

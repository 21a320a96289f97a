// SAXPY on the simulated cluster: lists the devices, runs y = a*x + y on 64 Mi floats and times it with CUDA
// events, the way a benchmark would. Under Phantom the elapsed time is simulated time.
// Run: bash scripts/example.sh examples/saxpy.cu
#include <cstdio>
#include <cuda_runtime.h>

#define CHECK(call)                                                                   \
    do {                                                                              \
        cudaError_t err_ = (call);                                                    \
        if (err_ != cudaSuccess) {                                                    \
            std::fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(err_)); \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

__global__ void saxpy(int n, float a, const float *x, float *y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}

int main() {
    int count = 0;
    CHECK(cudaGetDeviceCount(&count));
    for (int d = 0; d < count; d++) {
        cudaDeviceProp prop;
        CHECK(cudaGetDeviceProperties(&prop, d));
        std::printf("device %d: %s, %d SMs, %.1f GiB\n", d, prop.name, prop.multiProcessorCount,
                    prop.totalGlobalMem / 1073741824.0);
    }

    const int n = 64 << 20;
    float *x, *y;
    CHECK(cudaMalloc(&x, n * sizeof(float)));
    CHECK(cudaMalloc(&y, n * sizeof(float)));
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));

    CHECK(cudaEventRecord(start));
    for (int iter = 0; iter < 10; iter++) saxpy<<<(n + 255) / 256, 256>>>(n, 2.0f, x, y);
    CHECK(cudaGetLastError());
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    double bytes = 10.0 * 3 * n * sizeof(float);
    std::printf("10 x saxpy(%d): %.3f ms, %.0f GB/s\n", n, ms, bytes / (ms * 1e-3) / 1e9);

    CHECK(cudaFree(x));
    CHECK(cudaFree(y));
    return 0;
}

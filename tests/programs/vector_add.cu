// Vector addition: allocations, copies, one kernel launch with <<<>>>, synchronisation. Built with
// `nvcc -cudart shared`. Prints `name=value` lines; exit status 1 if any call returned an error.
// (Phantom moves no data, so the result values are not checked.)
#include <cstdio>
#include <cuda_runtime.h>

__global__ void vector_add(const float *a, const float *b, float *c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

static int failures = 0;

static void check(const char *call, cudaError_t err) {
    std::printf("%s=%d\n", call, (int)err);
    if (err != cudaSuccess) failures++;
}

int main() {
    const int n = 1 << 20;
    const size_t bytes = n * sizeof(float);
    float *h = new float[n];
    for (int i = 0; i < n; i++) h[i] = (float)i;

    float *a = nullptr, *b = nullptr, *c = nullptr;
    check("cudaMalloc_a", cudaMalloc(&a, bytes));
    check("cudaMalloc_b", cudaMalloc(&b, bytes));
    check("cudaMalloc_c", cudaMalloc(&c, bytes));
    check("cudaMemcpy_h2d_a", cudaMemcpy(a, h, bytes, cudaMemcpyHostToDevice));
    check("cudaMemcpy_h2d_b", cudaMemcpy(b, h, bytes, cudaMemcpyHostToDevice));

    const int threads = 256;
    const int blocks = (n + threads - 1) / threads;
    vector_add<<<blocks, threads>>>(a, b, c, n);
    check("launch", cudaGetLastError());
    check("cudaDeviceSynchronize", cudaDeviceSynchronize());
    check("cudaMemcpy_d2h_c", cudaMemcpy(h, c, bytes, cudaMemcpyDeviceToHost));
    check("cudaFree_a", cudaFree(a));
    check("cudaFree_b", cudaFree(b));
    check("cudaFree_c", cudaFree(c));
    check("cudaGetLastError", cudaGetLastError());
    delete[] h;
    std::printf("blocks=%d\nthreads=%d\n", blocks, threads);
    return failures ? 1 : 0;
}

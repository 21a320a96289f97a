/* The driver API of Phantom's libcuda.so.1 from plain C, compiled against NVIDIA's cuda.h (whose macros pick the
 * _v2 names) and linked with -lcuda against the staged libraries. Prints `name=value` lines; the test
 * (tests/tests/e2e/programs.rs) checks them. Exit status 1 if a call that must succeed failed. */
#include <stdio.h>
#include <string.h>
#include <cuda.h>

static int failures = 0;

static void check(const char *call, CUresult err) {
    printf("%s=%d\n", call, (int)err);
    if (err != CUDA_SUCCESS) failures++;
}

int main(void) {
    int version = 0, count = 0, sms = 0, active = -1, active_after = -1, again = -1;
    unsigned int flags = 99;
    CUdevice dev = -1, dev3 = -1, ctx_dev = -1;
    char name[256] = {0};
    size_t total = 0;
    CUuuid uuid;
    CUcontext ctx = NULL, cur = NULL, popped = NULL;
    const char *str = NULL, *ename = NULL;

    check("cuInit", cuInit(0));
    check("cuDriverGetVersion", cuDriverGetVersion(&version));
    check("cuDeviceGetCount", cuDeviceGetCount(&count));
    check("cuDeviceGet", cuDeviceGet(&dev, 0));
    check("cuDeviceGetName", cuDeviceGetName(name, sizeof name, dev));
    check("cuDeviceGetAttribute", cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
    check("cuDeviceTotalMem", cuDeviceTotalMem(&total, dev));
    check("cuDeviceGetUuid", cuDeviceGetUuid(&uuid, dev));
    printf("driver_version=%d\ndevice_count=%d\nname=%s\nmultiProcessorCount=%d\ntotalMem=%zu\n", version, count,
           name, sms, total);
    printf("cuDeviceGet_bad=%d\n", (int)cuDeviceGet(&dev, 8));
    printf("cuDeviceGetCount_null=%d\n", (int)cuDeviceGetCount(NULL));

    check("cuDevicePrimaryCtxGetState", cuDevicePrimaryCtxGetState(3, &flags, &active));
    check("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(&ctx, 3));
    check("cuDevicePrimaryCtxGetState_after", cuDevicePrimaryCtxGetState(3, &flags, &active_after));
    printf("ctx_flags=%u\nctx_active_before=%d\nctx_active_after=%d\nctx_nonnull=%d\n", flags, active, active_after,
           ctx != NULL);
    check("cuCtxPushCurrent", cuCtxPushCurrent(ctx));
    check("cuCtxGetCurrent", cuCtxGetCurrent(&cur));
    check("cuCtxGetDevice", cuCtxGetDevice(&ctx_dev));
    check("cuCtxPopCurrent", cuCtxPopCurrent(&popped));
    printf("current_is_ctx=%d\nctx_device=%d\npopped_is_ctx=%d\n", cur == ctx, ctx_dev, popped == ctx);
    check("cuCtxGetDevice_after_pop", cuCtxGetDevice(&ctx_dev));
    printf("device_after_pop=%d\n", ctx_dev);
    check("cuDevicePrimaryCtxRelease", cuDevicePrimaryCtxRelease(3));

    check("cuGetErrorString", cuGetErrorString(CUDA_ERROR_INVALID_VALUE, &str));
    check("cuGetErrorName", cuGetErrorName(CUDA_ERROR_NOT_SUPPORTED, &ename));
    printf("string_1=%s\nname_801=%s\n", str, ename);
    printf("cuGetErrorString_unknown=%d\n", (int)cuGetErrorString((CUresult)12345, &str));

    void *fn = NULL;
    CUdriverProcAddressQueryResult status = 99;
    check("cuGetProcAddress", cuGetProcAddress("cuDeviceGet", &fn, 13000, 0, &status));
    printf("proc_status=%d\n", (int)status);
    if (fn) {
        CUresult (*get)(CUdevice *, int) = (CUresult (*)(CUdevice *, int))fn;
        check("proc_cuDeviceGet", get(&dev3, 3));
        printf("proc_device=%d\n", dev3);
    }
    fn = (void *)1;
    printf("cuGetProcAddress_missing=%d\n", (int)cuGetProcAddress("cuNoSuchFunction", &fn, 13000, 0, &status));
    printf("missing_fn_null=%d\nmissing_status=%d\n", fn == NULL, (int)status);
    (void)again;
    return failures ? 1 : 0;
}

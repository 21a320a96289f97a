/* The calls every NCCL program makes before anything else, through NVIDIA's nccl.h and -lnccl: the version,
 * the status strings, the last error message, and the pnccl profiling aliases. Prints name=value lines. */
#include <nccl.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  int version = 0;
  printf("ncclGetVersion=%d\n", (int)ncclGetVersion(&version));
  printf("version=%d\n", version);
  printf("header_version=%d\n", NCCL_VERSION_CODE);
  version = 0;
  printf("pncclGetVersion=%d\n", (int)pncclGetVersion(&version));
  printf("pversion=%d\n", version);

  printf("last_error_before=%s\n", ncclGetLastError(NULL));
  printf("ncclGetVersion_null=%d\n", (int)ncclGetVersion(NULL));
  printf("last_error_after=%s\n", ncclGetLastError(NULL));
  printf("plast_error_same=%d\n", strcmp(ncclGetLastError(NULL), pncclGetLastError(NULL)) == 0);

  for (int r = ncclSuccess; r <= ncclNumResults; r++) {
    printf("string_%d=%s\n", r, ncclGetErrorString((ncclResult_t)r));
  }
  printf("pstring_same=%d\n", strcmp(ncclGetErrorString(ncclInvalidUsage), pncclGetErrorString(ncclInvalidUsage)) == 0);
  return 0;
}

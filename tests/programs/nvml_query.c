/* Phantom's libnvidia-ml.so.1 from plain C, loaded with dlopen as torch, NCCL and pynvml load it (NVML is never
 * linked). The prototypes and structures are declared here, with the layouts of NVIDIA's nvml.h (CUDA 13). Prints
 * `name=value` lines; the test (tests/tests/e2e/nvml.rs) checks them. Exit status 1 if a call that must succeed
 * failed; 0 after printing `init=<status>` if nvmlInit fails (a bad cluster configuration). */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef void *nvmlDevice_t;

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

/* The layout the unversioned calls write (NCCL's nvmlwrap.h). */
typedef struct {
    char busId[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    unsigned int reserved[4];
} nvmlPciInfo_v1_t;

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    union {
        double dVal;
        unsigned int uiVal;
        unsigned long long ullVal;
    } value;
} nvmlFieldValue_t;

typedef struct {
    unsigned int version;
    unsigned char clusterUuid[16];
    nvmlReturn_t status;
    unsigned int cliqueId;
    unsigned char state;
    unsigned int healthMask;
    unsigned char healthSummary;
} nvmlGpuFabricInfo_v3_t;

typedef struct {
    unsigned int version;
    unsigned char ibGuid[16], chassisSerialNumber[16];
    unsigned char slotNumber, trayIndex, hostId, peerType, moduleId;
} nvmlPlatformInfo_v2_t;

typedef struct {
    unsigned int environment, ccFeature, devToolsMode;
} nvmlConfComputeSystemState_t;

typedef struct {
    unsigned int version, environment, ccFeature, devToolsMode, multiGpuMode;
} nvmlSystemConfComputeSettings_v1_t;

typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

typedef struct {
    unsigned int version;
    int sensorType;
    int temperature;
} nvmlTemperature_v1_t;

#define STRUCT_VERSION(type, ver) ((unsigned int)(sizeof(type) | ((ver) << 24)))

/* One pointer per function, looked up by name. */
#define FUNCTIONS(X)                                                                                               \
    X(nvmlReturn_t, nvmlInit, (void))                                                                              \
    X(nvmlReturn_t, nvmlInit_v2, (void))                                                                           \
    X(nvmlReturn_t, nvmlShutdown, (void))                                                                          \
    X(const char *, nvmlErrorString, (nvmlReturn_t))                                                               \
    X(nvmlReturn_t, nvmlSystemGetCudaDriverVersion_v2, (int *))                                                    \
    X(nvmlReturn_t, nvmlSystemGetDriverVersion, (char *, unsigned int))                                            \
    X(nvmlReturn_t, nvmlSystemGetConfComputeState, (nvmlConfComputeSystemState_t *))                               \
    X(nvmlReturn_t, nvmlSystemGetConfComputeSettings, (nvmlSystemConfComputeSettings_v1_t *))                      \
    X(nvmlReturn_t, nvmlDeviceGetCount, (unsigned int *))                                                          \
    X(nvmlReturn_t, nvmlDeviceGetCount_v2, (unsigned int *))                                                       \
    X(nvmlReturn_t, nvmlDeviceGetHandleByIndex, (unsigned int, nvmlDevice_t *))                                    \
    X(nvmlReturn_t, nvmlDeviceGetHandleByIndex_v2, (unsigned int, nvmlDevice_t *))                                 \
    X(nvmlReturn_t, nvmlDeviceGetHandleByPciBusId, (const char *, nvmlDevice_t *))                                 \
    X(nvmlReturn_t, nvmlDeviceGetHandleByPciBusId_v2, (const char *, nvmlDevice_t *))                              \
    X(nvmlReturn_t, nvmlDeviceGetHandleByUUID, (const char *, nvmlDevice_t *))                                     \
    X(nvmlReturn_t, nvmlDeviceGetIndex, (nvmlDevice_t, unsigned int *))                                            \
    X(nvmlReturn_t, nvmlDeviceGetName, (nvmlDevice_t, char *, unsigned int))                                       \
    X(nvmlReturn_t, nvmlDeviceGetUUID, (nvmlDevice_t, char *, unsigned int))                                       \
    X(nvmlReturn_t, nvmlDeviceGetPciInfo_v3, (nvmlDevice_t, nvmlPciInfo_t *))                                      \
    X(nvmlReturn_t, nvmlDeviceGetMemoryInfo, (nvmlDevice_t, nvmlMemory_t *))                                       \
    X(nvmlReturn_t, nvmlDeviceGetMemoryInfo_v2, (nvmlDevice_t, nvmlMemory_v2_t *))                                 \
    X(nvmlReturn_t, nvmlDeviceGetCudaComputeCapability, (nvmlDevice_t, int *, int *))                              \
    X(nvmlReturn_t, nvmlDeviceGetComputeRunningProcesses, (nvmlDevice_t, unsigned int *, void *))                  \
    X(nvmlReturn_t, nvmlDeviceGetP2PStatus, (nvmlDevice_t, nvmlDevice_t, int, int *))                              \
    X(nvmlReturn_t, nvmlDeviceGetTopologyCommonAncestor, (nvmlDevice_t, nvmlDevice_t, int *))                      \
    X(nvmlReturn_t, nvmlDeviceGetNvLinkState, (nvmlDevice_t, unsigned int, int *))                                 \
    X(nvmlReturn_t, nvmlDeviceGetNvLinkCapability, (nvmlDevice_t, unsigned int, int, unsigned int *))              \
    X(nvmlReturn_t, nvmlDeviceGetNvLinkRemoteDeviceType, (nvmlDevice_t, unsigned int, int *))                      \
    X(nvmlReturn_t, nvmlDeviceGetNvLinkRemotePciInfo, (nvmlDevice_t, unsigned int, nvmlPciInfo_v1_t *))            \
    X(nvmlReturn_t, nvmlDeviceGetNvLinkRemotePciInfo_v2, (nvmlDevice_t, unsigned int, nvmlPciInfo_t *))            \
    X(nvmlReturn_t, nvmlDeviceGetFieldValues, (nvmlDevice_t, int, nvmlFieldValue_t *))                             \
    X(nvmlReturn_t, nvmlDeviceGetGpuFabricInfoV, (nvmlDevice_t, nvmlGpuFabricInfo_v3_t *))                         \
    X(nvmlReturn_t, nvmlDeviceGetPlatformInfo, (nvmlDevice_t, nvmlPlatformInfo_v2_t *))                            \
    X(nvmlReturn_t, nvmlDeviceGetUtilizationRates, (nvmlDevice_t, nvmlUtilization_t *))                            \
    X(nvmlReturn_t, nvmlDeviceGetTemperatureV, (nvmlDevice_t, nvmlTemperature_v1_t *))                             \
    X(nvmlReturn_t, nvmlDeviceGetPowerUsage, (nvmlDevice_t, unsigned int *))                                       \
    X(nvmlReturn_t, nvmlDeviceGetClockInfo, (nvmlDevice_t, int, unsigned int *))

#define DECLARE(ret, name, args) static ret(*name) args;
FUNCTIONS(DECLARE)

static int failures = 0;

static void check(const char *call, nvmlReturn_t r) {
    printf("%s=%d\n", call, r);
    if (r != 0) failures++;
}

int main(void) {
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (!lib) {
        printf("dlopen=%s\n", dlerror());
        return 1;
    }
#define LOOKUP(ret, name, args)                                                                                    \
    *(void **)&name = dlsym(lib, #name);                                                                           \
    if (!name) {                                                                                                   \
        printf("missing=%s\n", #name);                                                                             \
        return 1;                                                                                                  \
    }
    FUNCTIONS(LOOKUP)

    unsigned int count = 0, count_v1 = 0, index = 99;
    nvmlDevice_t dev[64] = {0}, found = NULL;

    /* Before nvmlInit. */
    printf("uninit_count=%d\n", nvmlDeviceGetCount_v2(&count));
    printf("uninit_shutdown=%d\n", nvmlShutdown());
    for (int code = 0; code <= 3; code++) printf("string_%d=%s\n", code, nvmlErrorString(code));
    printf("string_999=%s\nstring_12345=%s\n", nvmlErrorString(999), nvmlErrorString(12345));

    nvmlReturn_t init = nvmlInit_v2();
    printf("init=%d\n", init);
    if (init != 0) return 0;
    check("nvmlInit", nvmlInit()); /* a second reference */

    check("nvmlDeviceGetCount_v2", nvmlDeviceGetCount_v2(&count));
    check("nvmlDeviceGetCount", nvmlDeviceGetCount(&count_v1));
    printf("device_count=%u\ndevice_count_v1=%u\n", count, count_v1);
    if (count > 64) count = 64;

    int distinct_uuids = 0, distinct_bus_ids = 0, indexes_ok = 1;
    char uuids[64][96], bus_ids[64][32];
    unsigned int buses[64];
    for (unsigned int i = 0; i < count; i++) {
        char name[96] = {0};
        nvmlPciInfo_t pci;
        memset(&pci, 0, sizeof pci);
        check("nvmlDeviceGetHandleByIndex_v2", nvmlDeviceGetHandleByIndex_v2(i, &dev[i]));
        check("nvmlDeviceGetUUID", nvmlDeviceGetUUID(dev[i], uuids[i], sizeof uuids[i]));
        check("nvmlDeviceGetPciInfo_v3", nvmlDeviceGetPciInfo_v3(dev[i], &pci));
        check("nvmlDeviceGetIndex", nvmlDeviceGetIndex(dev[i], &index));
        check("nvmlDeviceGetName", nvmlDeviceGetName(dev[i], name, sizeof name));
        strcpy(bus_ids[i], pci.busId);
        buses[i] = pci.bus;
        indexes_ok &= index == i;
        printf("uuid_%u=%s\nbus_id_%u=%s\nname_%u=%s\n", i, uuids[i], i, pci.busId, i, name);
        int new_uuid = 1, new_bus = 1;
        for (unsigned int j = 0; j < i; j++) {
            if (strcmp(uuids[i], uuids[j]) == 0) new_uuid = 0;
            if (strcmp(bus_ids[i], bus_ids[j]) == 0) new_bus = 0;
        }
        distinct_uuids += new_uuid;
        distinct_bus_ids += new_bus;
        if (i == 0)
            printf("bus_id_legacy_0=%s\npci_device_id_0=0x%08x\npci_subsystem_id_0=0x%08x\n", pci.busIdLegacy,
                   pci.pciDeviceId, pci.pciSubSystemId);
    }
    printf("distinct_uuids=%d\ndistinct_bus_ids=%d\nindexes_ok=%d\n", distinct_uuids, distinct_bus_ids, indexes_ok);

    /* Handles: by index (v1 too), by PCI bus id in every form, by UUID; bad ones. */
    check("nvmlDeviceGetHandleByIndex", nvmlDeviceGetHandleByIndex(2, &found));
    printf("handle_v1_same=%d\n", found == dev[2]);
    printf("handle_index_out_of_range=%d\n", nvmlDeviceGetHandleByIndex_v2(count, &found));
    printf("handle_null_out=%d\n", nvmlDeviceGetHandleByIndex_v2(0, NULL));
    check("by_bus_id", nvmlDeviceGetHandleByPciBusId_v2(bus_ids[3], &found));
    printf("by_bus_id_same=%d\n", found == dev[3]);
    char legacy[32];
    snprintf(legacy, sizeof legacy, "%04x:%02x:00.0", 0u, buses[3]); /* "0000:5d:00.0" */
    found = NULL;
    check("by_bus_id_legacy", nvmlDeviceGetHandleByPciBusId(legacy, &found));
    printf("by_bus_id_legacy_same=%d\n", found == dev[3]);
    printf("by_bus_id_absent=%d\n", nvmlDeviceGetHandleByPciBusId_v2("00000000:01:00.0", &found));
    printf("by_bus_id_malformed=%d\n", nvmlDeviceGetHandleByPciBusId_v2("not a bus id", &found));
    found = NULL;
    check("by_uuid", nvmlDeviceGetHandleByUUID(uuids[5], &found));
    printf("by_uuid_same=%d\n", found == dev[5]);
    printf("by_uuid_absent=%d\n", nvmlDeviceGetHandleByUUID("GPU-00000000-0000-0000-0000-000000000000", &found));
    printf("bad_handle=%d\n", nvmlDeviceGetIndex((nvmlDevice_t)&found, &index));
    char small[8];
    printf("uuid_small_buffer=%d\n", nvmlDeviceGetUUID(dev[0], small, sizeof small));

    /* Device 0: compute capability, memory, processes. */
    int major = 0, minor = 0;
    check("nvmlDeviceGetCudaComputeCapability", nvmlDeviceGetCudaComputeCapability(dev[0], &major, &minor));
    printf("cc=%d.%d\n", major, minor);
    nvmlMemory_t mem;
    check("nvmlDeviceGetMemoryInfo", nvmlDeviceGetMemoryInfo(dev[0], &mem));
    printf("memory_total=%llu\nmemory_free=%llu\nmemory_used=%llu\n", mem.total, mem.free, mem.used);
    nvmlMemory_v2_t mem2;
    memset(&mem2, 0, sizeof mem2);
    printf("memory_v2_bad_version=%d\n", nvmlDeviceGetMemoryInfo_v2(dev[0], &mem2));
    mem2.version = STRUCT_VERSION(nvmlMemory_v2_t, 2);
    check("nvmlDeviceGetMemoryInfo_v2", nvmlDeviceGetMemoryInfo_v2(dev[0], &mem2));
    printf("memory_v2_total=%llu\nmemory_v2_reserved=%llu\nmemory_v2_used=%llu\n", mem2.total, mem2.reserved,
           mem2.used);
    unsigned int procs = 5;
    check("nvmlDeviceGetComputeRunningProcesses", nvmlDeviceGetComputeRunningProcesses(dev[0], &procs, NULL));
    printf("processes=%u\n", procs);
    nvmlUtilization_t util = {7, 7};
    check("nvmlDeviceGetUtilizationRates", nvmlDeviceGetUtilizationRates(dev[0], &util));
    nvmlTemperature_v1_t temp = {STRUCT_VERSION(nvmlTemperature_v1_t, 1), 0, 0};
    check("nvmlDeviceGetTemperatureV", nvmlDeviceGetTemperatureV(dev[0], &temp));
    unsigned int power = 0, sm_clock = 0, mem_clock = 0;
    check("nvmlDeviceGetPowerUsage", nvmlDeviceGetPowerUsage(dev[0], &power));
    check("nvmlDeviceGetClockInfo_sm", nvmlDeviceGetClockInfo(dev[0], 1, &sm_clock));
    check("nvmlDeviceGetClockInfo_mem", nvmlDeviceGetClockInfo(dev[0], 2, &mem_clock));
    printf("utilization_gpu=%u\nutilization_memory=%u\ntemperature=%d\npower_mw=%u\nsm_clock_mhz=%u\n"
           "mem_clock_mhz=%u\n",
           util.gpu, util.memory, temp.temperature, power, sm_clock, mem_clock);

    /* System. */
    int cuda_version = 0;
    char driver[80] = {0};
    check("nvmlSystemGetCudaDriverVersion_v2", nvmlSystemGetCudaDriverVersion_v2(&cuda_version));
    check("nvmlSystemGetDriverVersion", nvmlSystemGetDriverVersion(driver, sizeof driver));
    printf("cuda_driver_version=%d\ndriver_version=%s\n", cuda_version, driver);
    nvmlConfComputeSystemState_t cc_state = {9, 9, 9};
    check("nvmlSystemGetConfComputeState", nvmlSystemGetConfComputeState(&cc_state));
    nvmlSystemConfComputeSettings_v1_t cc_settings;
    memset(&cc_settings, 0xff, sizeof cc_settings);
    cc_settings.version = STRUCT_VERSION(nvmlSystemConfComputeSettings_v1_t, 1);
    check("nvmlSystemGetConfComputeSettings", nvmlSystemGetConfComputeSettings(&cc_settings));
    printf("cc_feature=%u\ncc_multi_gpu_mode=%u\n", cc_state.ccFeature, cc_settings.multiGpuMode);

    /* Topology, peers, NVLink, as NCCL's topology detection and torch's NVLink detector ask. */
    int level_same = -1, level_socket = -1, level_system = -1, p2p_read = -1, p2p_nvlink = -1;
    check("nvmlDeviceGetTopologyCommonAncestor_same", nvmlDeviceGetTopologyCommonAncestor(dev[0], dev[0], &level_same));
    check("nvmlDeviceGetTopologyCommonAncestor_socket", nvmlDeviceGetTopologyCommonAncestor(dev[0], dev[1], &level_socket));
    check("nvmlDeviceGetTopologyCommonAncestor_system", nvmlDeviceGetTopologyCommonAncestor(dev[0], dev[4], &level_system));
    check("nvmlDeviceGetP2PStatus_read", nvmlDeviceGetP2PStatus(dev[0], dev[1], 0, &p2p_read));
    check("nvmlDeviceGetP2PStatus_nvlink", nvmlDeviceGetP2PStatus(dev[0], dev[1], 2, &p2p_nvlink));
    printf("topology_same=%d\ntopology_socket=%d\ntopology_system=%d\np2p_read=%d\np2p_nvlink=%d\n", level_same,
           level_socket, level_system, p2p_read, p2p_nvlink);
    printf("p2p_bad_index=%d\n", nvmlDeviceGetP2PStatus(dev[0], dev[1], 9, &p2p_read));

    int links = 0, switch_links = 0, remote_type = -1;
    for (unsigned int l = 0; l < 64; l++) {
        if (nvmlDeviceGetNvLinkRemoteDeviceType(dev[0], l, &remote_type) != 0) break; /* torch's loop */
        links++;
        switch_links += remote_type == 2;
    }
    printf("nvlinks=%d\nswitch_links=%d\n", links, switch_links);
    int active = -1;
    unsigned int can_p2p = 9, sysmem = 9;
    check("nvmlDeviceGetNvLinkState", nvmlDeviceGetNvLinkState(dev[0], 0, &active));
    check("nvmlDeviceGetNvLinkCapability_p2p", nvmlDeviceGetNvLinkCapability(dev[0], 0, 0, &can_p2p));
    check("nvmlDeviceGetNvLinkCapability_sysmem", nvmlDeviceGetNvLinkCapability(dev[0], 0, 1, &sysmem));
    printf("nvlink_active=%d\nnvlink_can_p2p=%u\nnvlink_sysmem=%u\n", active, can_p2p, sysmem);
    printf("nvlink_state_past_last=%d\n", nvmlDeviceGetNvLinkState(dev[0], (unsigned int)links, &active));
    nvmlPciInfo_v1_t remote_v1;
    memset(&remote_v1, 0, sizeof remote_v1);
    check("nvmlDeviceGetNvLinkRemotePciInfo", nvmlDeviceGetNvLinkRemotePciInfo(dev[0], 0, &remote_v1));
    nvmlPciInfo_t remote;
    check("nvmlDeviceGetNvLinkRemotePciInfo_v2", nvmlDeviceGetNvLinkRemotePciInfo_v2(dev[0], 0, &remote));
    printf("remote_bus_id_v1=%s\nremote_bus_id_v2=%s\n", remote_v1.busId, remote.busId);

    nvmlFieldValue_t fv[5];
    memset(fv, 0, sizeof fv);
    fv[0].fieldId = 91;                   /* NVML_FI_DEV_NVLINK_LINK_COUNT */
    fv[1].fieldId = 90;                   /* NVML_FI_DEV_NVLINK_SPEED_MBPS_COMMON */
    fv[2].fieldId = 165, fv[2].scopeId = 3; /* NVML_FI_DEV_NVLINK_GET_STATE, link 3 */
    fv[3].fieldId = 170;                  /* NVML_FI_DEV_C2C_LINK_COUNT */
    fv[4].fieldId = 1;                    /* NVML_FI_DEV_ECC_CURRENT: not reported */
    check("nvmlDeviceGetFieldValues", nvmlDeviceGetFieldValues(dev[0], 5, fv));
    printf("field_link_count=%d:%u\nfield_link_speed=%d:%u\nfield_link_state=%d:%u\nfield_c2c_count=%d:%u\n"
           "field_other=%d\n",
           fv[0].nvmlReturn, fv[0].value.uiVal, fv[1].nvmlReturn, fv[1].value.uiVal, fv[2].nvmlReturn,
           fv[2].value.uiVal, fv[3].nvmlReturn, fv[3].value.uiVal, fv[4].nvmlReturn);

    nvmlGpuFabricInfo_v3_t fabric;
    memset(&fabric, 0xff, sizeof fabric);
    fabric.version = STRUCT_VERSION(nvmlGpuFabricInfo_v3_t, 3);
    check("nvmlDeviceGetGpuFabricInfoV", nvmlDeviceGetGpuFabricInfoV(dev[0], &fabric));
    printf("fabric_state=%d\nfabric_status=%d\n", fabric.state, fabric.status);
    fabric.version = 1;
    printf("fabric_bad_version=%d\n", nvmlDeviceGetGpuFabricInfoV(dev[0], &fabric));
    nvmlPlatformInfo_v2_t platform = {STRUCT_VERSION(nvmlPlatformInfo_v2_t, 2)};
    printf("platform_info=%d\n", nvmlDeviceGetPlatformInfo(dev[0], &platform));

    /* Reference counting: two inits, two shutdowns; then uninitialised; a new init gives the same handles. */
    check("shutdown_1", nvmlShutdown());
    check("count_after_one_shutdown", nvmlDeviceGetCount_v2(&count));
    check("shutdown_2", nvmlShutdown());
    printf("count_after_shutdown=%d\n", nvmlDeviceGetCount_v2(&count));
    printf("index_after_shutdown=%d\n", nvmlDeviceGetIndex(dev[0], &index));
    printf("shutdown_3=%d\n", nvmlShutdown());
    check("reinit", nvmlInit_v2());
    check("reinit_handle", nvmlDeviceGetHandleByIndex_v2(1, &found));
    printf("reinit_same_handle=%d\n", found == dev[1]);
    check("final_shutdown", nvmlShutdown());

    /* What Phantom's runtime says of the same GPUs: PCI bus ids and UUIDs (cudaDeviceProp starts with
     * char name[256] and then the 16-byte cudaUUID_t). */
    void *rt = dlopen("libcudart.so.13", RTLD_NOW);
    int (*get_count)(int *) = rt ? (int (*)(int *))dlsym(rt, "cudaGetDeviceCount") : NULL;
    int (*get_bus_id)(char *, int, int) = rt ? (int (*)(char *, int, int))dlsym(rt, "cudaDeviceGetPCIBusId") : NULL;
    int (*get_props)(void *, int) = rt ? (int (*)(void *, int))dlsym(rt, "cudaGetDeviceProperties") : NULL;
    int rt_count = 0;
    if (!get_count || !get_bus_id || !get_props || get_count(&rt_count) != 0) {
        printf("runtime=unavailable\n");
        return 1;
    }
    printf("runtime_device_count=%d\n", rt_count);
    static unsigned char props[16384];
    for (int d = 0; d < rt_count && d < 64; d++) {
        char bus_id[32] = {0};
        check("cudaDeviceGetPCIBusId", get_bus_id(bus_id, sizeof bus_id, d));
        check("cudaGetDeviceProperties", get_props(props, d));
        const unsigned char *u = props + 256;
        printf("runtime_bus_id_%d=%s\n", d, bus_id);
        printf("runtime_uuid_%d=GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x\n", d, u[0],
               u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    }
    return failures ? 1 : 0;
}

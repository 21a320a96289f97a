//! The numbers of cuDNN 9's C enums that this library reads or writes (cudnn_graph.h of cuDNN 9.19). Plain
//! integer constants, never Rust enums: a value from the application may be any integer.
#![allow(dead_code)] // a table of the header's numbers, not all of which are read

/// `cudnnStatus_t`.
pub mod status {
    pub const NOT_INITIALIZED: u32 = 1001;
    pub const BAD_PARAM: u32 = 2000;
    pub const BAD_PARAM_NULL_POINTER: u32 = 2002;
    pub const BAD_PARAM_NOT_FINALIZED: u32 = 2004;
    pub const BAD_PARAM_OUT_OF_BOUND: u32 = 2005;
    pub const BAD_PARAM_SHAPE_MISMATCH: u32 = 2008;
    pub const BAD_PARAM_ATTRIBUTE_TYPE: u32 = 2010;
    pub const BAD_PARAM_DESCRIPTOR_TYPE: u32 = 2012;
    pub const NOT_SUPPORTED: u32 = 3000;
    pub const NOT_SUPPORTED_DATA_TYPE: u32 = 3003;
    pub const INTERNAL_ERROR: u32 = 4000;
    pub const EXECUTION_FAILED: u32 = 5000;

    /// NVIDIA's names, for `cudnnGetErrorString` and log lines.
    pub fn name(code: u32) -> Option<&'static std::ffi::CStr> {
        Some(match code {
            0 => c"CUDNN_STATUS_SUCCESS",
            1001 => c"CUDNN_STATUS_NOT_INITIALIZED",
            1002 => c"CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH",
            1003 => c"CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH",
            1004 => c"CUDNN_STATUS_DEPRECATED",
            1005 => c"CUDNN_STATUS_LICENSE_ERROR",
            1006 => c"CUDNN_STATUS_RUNTIME_IN_PROGRESS",
            1007 => c"CUDNN_STATUS_RUNTIME_FP_OVERFLOW",
            1008 => c"CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED",
            2000 => c"CUDNN_STATUS_BAD_PARAM",
            2001 => c"CUDNN_STATUS_INVALID_VALUE",
            2002 => c"CUDNN_STATUS_BAD_PARAM_NULL_POINTER",
            2003 => c"CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER",
            2004 => c"CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED",
            2005 => c"CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND",
            2006 => c"CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT",
            2007 => c"CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH",
            2008 => c"CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH",
            2009 => c"CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES",
            2010 => c"CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE",
            2011 => c"CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH",
            2012 => c"CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE",
            3000 => c"CUDNN_STATUS_NOT_SUPPORTED",
            3001 => c"CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN",
            3002 => c"CUDNN_STATUS_NOT_SUPPORTED_SHAPE",
            3003 => c"CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE",
            3004 => c"CUDNN_STATUS_NOT_SUPPORTED_LAYOUT",
            3005 => c"CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER",
            3006 => c"CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART",
            3007 => c"CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH",
            3008 => c"CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING",
            3009 => c"CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE",
            3010 => c"CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT",
            3011 => c"CUDNN_STATUS_NOT_SUPPORTED_PADDING",
            3012 => c"CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM",
            3013 => c"CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API",
            4000 => c"CUDNN_STATUS_INTERNAL_ERROR",
            4001 => c"CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED",
            4002 => c"CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE",
            4003 => c"CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED",
            4004 => c"CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED",
            4005 => c"CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM",
            4006 => c"CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED",
            5000 => c"CUDNN_STATUS_EXECUTION_FAILED",
            5001 => c"CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER",
            5002 => c"CUDNN_STATUS_EXECUTION_FAILED_CUBLAS",
            5003 => c"CUDNN_STATUS_EXECUTION_FAILED_CUDART",
            5004 => c"CUDNN_STATUS_EXECUTION_FAILED_CURAND",
            _ => return None,
        })
    }
}

/// `cudnnBackendDescriptorType_t`.
pub mod desc {
    pub const POINTWISE: u32 = 0;
    pub const CONVOLUTION: u32 = 1;
    pub const ENGINE: u32 = 2;
    pub const ENGINECFG: u32 = 3;
    pub const ENGINEHEUR: u32 = 4;
    pub const EXECUTION_PLAN: u32 = 5;
    pub const INTERMEDIATE_INFO: u32 = 6;
    pub const KNOB_CHOICE: u32 = 7;
    pub const KNOB_INFO: u32 = 8;
    pub const LAYOUT_INFO: u32 = 9;
    pub const OP_CONV_FORWARD: u32 = 10;
    pub const OP_CONV_BACKWARD_FILTER: u32 = 11;
    pub const OP_CONV_BACKWARD_DATA: u32 = 12;
    pub const OP_POINTWISE: u32 = 13;
    pub const OP_GEN_STATS: u32 = 14;
    pub const OPERATIONGRAPH: u32 = 15;
    pub const VARIANT_PACK: u32 = 16;
    pub const TENSOR: u32 = 17;
    pub const MATMUL: u32 = 18;
    pub const OP_MATMUL: u32 = 19;
    pub const OP_BN_FINALIZE_STATISTICS: u32 = 20;
    pub const REDUCTION: u32 = 21;
    pub const OP_REDUCTION: u32 = 22;
    pub const OP_BN_BWD_WEIGHTS: u32 = 23;
    pub const RESAMPLE: u32 = 24;
    pub const OP_RESAMPLE_FWD: u32 = 25;
    pub const OP_RESAMPLE_BWD: u32 = 26;
    pub const OP_CONCAT: u32 = 27;
    pub const OP_SIGNAL: u32 = 28;
    pub const OP_NORM_FORWARD: u32 = 29;
    pub const OP_NORM_BACKWARD: u32 = 30;
    pub const OP_RESHAPE: u32 = 31;
    pub const RNG: u32 = 32;
    pub const OP_RNG: u32 = 33;
    pub const KERNEL_CACHE: u32 = 34;
    pub const OP_PAGED_CACHE_LOAD: u32 = 35;
    pub const OP_BLOCK_SCALE_QUANTIZE: u32 = 36;
    pub const OP_BLOCK_SCALE_DEQUANTIZE: u32 = 37;
    pub const DEVICEPROP: u32 = 38;
    pub const OP_EXPAND_BAND_MATRIX: u32 = 39;
    pub const OP_CONTRACT_BAND_MATRIX: u32 = 40;
    pub const OP_SDPA_FWD: u32 = 41;
    pub const OP_MOE_GROUPED_MATMUL: u32 = 42;
    pub const OP_SDPA_BWD: u32 = 43;
    /// One past the largest type cuDNN 9.19 knows (`CUDNN_BACKEND_OPERATION_SDPA_BWD_DESCRIPTOR` + 1; the
    /// diagonal-band-mask and softmax operations came with 9.20).
    pub const COUNT: u32 = 44;

    /// Whether descriptors of this type are operations (members of an operation graph).
    pub fn is_operation(kind: u32) -> bool {
        matches!(kind, 10..=14 | 19 | 20 | 22 | 23 | 25..=31 | 33 | 35..=37 | 39..=43)
    }

    /// NVIDIA's name without the `CUDNN_BACKEND_` prefix, for log lines.
    pub fn name(kind: u32) -> &'static str {
        const NAMES: [&str; COUNT as usize] = [
            "POINTWISE_DESCRIPTOR",
            "CONVOLUTION_DESCRIPTOR",
            "ENGINE_DESCRIPTOR",
            "ENGINECFG_DESCRIPTOR",
            "ENGINEHEUR_DESCRIPTOR",
            "EXECUTION_PLAN_DESCRIPTOR",
            "INTERMEDIATE_INFO_DESCRIPTOR",
            "KNOB_CHOICE_DESCRIPTOR",
            "KNOB_INFO_DESCRIPTOR",
            "LAYOUT_INFO_DESCRIPTOR",
            "OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR",
            "OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR",
            "OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR",
            "OPERATION_POINTWISE_DESCRIPTOR",
            "OPERATION_GEN_STATS_DESCRIPTOR",
            "OPERATIONGRAPH_DESCRIPTOR",
            "VARIANT_PACK_DESCRIPTOR",
            "TENSOR_DESCRIPTOR",
            "MATMUL_DESCRIPTOR",
            "OPERATION_MATMUL_DESCRIPTOR",
            "OPERATION_BN_FINALIZE_STATISTICS_DESCRIPTOR",
            "REDUCTION_DESCRIPTOR",
            "OPERATION_REDUCTION_DESCRIPTOR",
            "OPERATION_BN_BWD_WEIGHTS_DESCRIPTOR",
            "RESAMPLE_DESCRIPTOR",
            "OPERATION_RESAMPLE_FWD_DESCRIPTOR",
            "OPERATION_RESAMPLE_BWD_DESCRIPTOR",
            "OPERATION_CONCAT_DESCRIPTOR",
            "OPERATION_SIGNAL_DESCRIPTOR",
            "OPERATION_NORM_FORWARD_DESCRIPTOR",
            "OPERATION_NORM_BACKWARD_DESCRIPTOR",
            "OPERATION_RESHAPE_DESCRIPTOR",
            "RNG_DESCRIPTOR",
            "OPERATION_RNG_DESCRIPTOR",
            "KERNEL_CACHE_DESCRIPTOR",
            "OPERATION_PAGED_CACHE_LOAD_DESCRIPTOR",
            "OPERATION_BLOCK_SCALE_QUANTIZE_DESCRIPTOR",
            "OPERATION_BLOCK_SCALE_DEQUANTIZE_DESCRIPTOR",
            "DEVICEPROP_DESCRIPTOR",
            "OPERATION_EXPAND_BAND_MATRIX_DESCRIPTOR",
            "OPERATION_CONTRACT_BAND_MATRIX_DESCRIPTOR",
            "OPERATION_SDPA_FWD_DESCRIPTOR",
            "OPERATION_MOE_GROUPED_MATMUL_DESCRIPTOR",
            "OPERATION_SDPA_BWD_DESCRIPTOR",
        ];
        NAMES.get(kind as usize).copied().unwrap_or("UNKNOWN_DESCRIPTOR")
    }
}

/// `cudnnBackendAttributeType_t`.
pub mod ty {
    pub const HANDLE: u32 = 0;
    pub const DATA_TYPE: u32 = 1;
    pub const BOOLEAN: u32 = 2;
    pub const INT64: u32 = 3;
    pub const FLOAT: u32 = 4;
    pub const DOUBLE: u32 = 5;
    pub const VOID_PTR: u32 = 6;
    pub const CONVOLUTION_MODE: u32 = 7;
    pub const HEUR_MODE: u32 = 8;
    pub const KNOB_TYPE: u32 = 9;
    pub const NUMERICAL_NOTE: u32 = 11;
    pub const LAYOUT_TYPE: u32 = 12;
    pub const POINTWISE_MODE: u32 = 14;
    pub const BACKEND_DESCRIPTOR: u32 = 15;
    pub const REDUCTION_OPERATOR_TYPE: u32 = 18;
    pub const BEHAVIOR_NOTE: u32 = 19;
    pub const TENSOR_REORDERING_MODE: u32 = 20;
    pub const INT32: u32 = 23;
    pub const CHAR: u32 = 24;
    pub const FRACTION: u32 = 26;
    pub const RNG_DISTRIBUTION: u32 = 29;

    /// Bytes of one element of an attribute of this type (C `bool` is one byte, every enum four), or `None` for
    /// a type cuDNN 9.19 does not have.
    pub fn size(t: u32) -> Option<usize> {
        Some(match t {
            HANDLE | INT64 | DOUBLE | VOID_PTR | BACKEND_DESCRIPTOR => 8,
            BOOLEAN | CHAR => 1,
            FRACTION => 16,
            1 | 4 | 7..=14 | 16..=23 | 25 | 27..=31 => 4,
            _ => return None,
        })
    }
}

/// `cudnnBackendAttributeName_t`: the attributes this library interprets.
pub mod attr {
    pub const POINTWISE_MODE: u32 = 0;
    pub const POINTWISE_MATH_PREC: u32 = 1;
    pub const POINTWISE_AXIS: u32 = 9;
    pub const CONVOLUTION_COMP_TYPE: u32 = 100;
    pub const CONVOLUTION_CONV_MODE: u32 = 101;
    pub const CONVOLUTION_DILATIONS: u32 = 102;
    pub const CONVOLUTION_FILTER_STRIDES: u32 = 103;
    pub const CONVOLUTION_POST_PADDINGS: u32 = 104;
    pub const CONVOLUTION_PRE_PADDINGS: u32 = 105;
    pub const ENGINEHEUR_MODE: u32 = 200;
    pub const ENGINEHEUR_OPERATION_GRAPH: u32 = 201;
    pub const ENGINEHEUR_RESULTS: u32 = 202;
    pub const ENGINEHEUR_SM_COUNT_TARGET: u32 = 203;
    pub const ENGINECFG_ENGINE: u32 = 300;
    pub const ENGINECFG_INTERMEDIATE_INFO: u32 = 301;
    pub const ENGINECFG_KNOB_CHOICES: u32 = 302;
    pub const ENGINECFG_WORKSPACE_SIZE: u32 = 303;
    pub const ENGINECFG_SHARED_MEMORY_USED: u32 = 304;
    pub const EXECUTION_PLAN_HANDLE: u32 = 400;
    pub const EXECUTION_PLAN_ENGINE_CONFIG: u32 = 401;
    pub const EXECUTION_PLAN_WORKSPACE_SIZE: u32 = 402;
    pub const EXECUTION_PLAN_COMPUTED_INTERMEDIATE_UIDS: u32 = 403;
    pub const EXECUTION_PLAN_RUN_ONLY_INTERMEDIATE_UIDS: u32 = 404;
    pub const EXECUTION_PLAN_JSON_REPRESENTATION: u32 = 405;
    pub const KNOB_CHOICE_KNOB_TYPE: u32 = 600;
    pub const KNOB_CHOICE_KNOB_VALUE: u32 = 601;
    pub const OPERATION_CONVOLUTION_FORWARD_W: u32 = 703;
    pub const OPERATION_CONVOLUTION_FORWARD_X: u32 = 704;
    pub const OPERATION_CONVOLUTION_FORWARD_Y: u32 = 705;
    pub const OPERATION_CONVOLUTION_BWD_DATA_W: u32 = 709;
    pub const OPERATION_CONVOLUTION_BWD_DATA_DX: u32 = 710;
    pub const OPERATION_CONVOLUTION_BWD_DATA_DY: u32 = 711;
    pub const OPERATION_CONVOLUTION_BWD_FILTER_DW: u32 = 715;
    pub const OPERATION_CONVOLUTION_BWD_FILTER_X: u32 = 716;
    pub const OPERATION_CONVOLUTION_BWD_FILTER_DY: u32 = 717;
    pub const OPERATION_POINTWISE_PW_DESCRIPTOR: u32 = 750;
    pub const OPERATION_POINTWISE_XDESC: u32 = 751;
    pub const OPERATION_POINTWISE_BDESC: u32 = 752;
    pub const OPERATION_POINTWISE_YDESC: u32 = 753;
    pub const OPERATION_POINTWISE_ALPHA1: u32 = 754;
    pub const OPERATION_POINTWISE_ALPHA2: u32 = 755;
    pub const OPERATION_POINTWISE_DXDESC: u32 = 756;
    pub const OPERATION_POINTWISE_DYDESC: u32 = 757;
    pub const OPERATION_POINTWISE_TDESC: u32 = 758;
    pub const OPERATIONGRAPH_HANDLE: u32 = 800;
    pub const OPERATIONGRAPH_OPS: u32 = 801;
    pub const OPERATIONGRAPH_ENGINE_GLOBAL_COUNT: u32 = 802;
    pub const TENSOR_BYTE_ALIGNMENT: u32 = 900;
    pub const TENSOR_DATA_TYPE: u32 = 901;
    pub const TENSOR_DIMENSIONS: u32 = 902;
    pub const TENSOR_STRIDES: u32 = 903;
    pub const TENSOR_VECTOR_COUNT: u32 = 904;
    pub const TENSOR_VECTORIZED_DIMENSION: u32 = 905;
    pub const TENSOR_UNIQUE_ID: u32 = 906;
    pub const TENSOR_IS_VIRTUAL: u32 = 907;
    pub const TENSOR_IS_BY_VALUE: u32 = 908;
    pub const TENSOR_REORDERING_MODE: u32 = 909;
    pub const TENSOR_RAGGED_OFFSET_DESC: u32 = 913;
    pub const VARIANT_PACK_UNIQUE_IDS: u32 = 1000;
    pub const VARIANT_PACK_DATA_POINTERS: u32 = 1001;
    pub const VARIANT_PACK_INTERMEDIATES: u32 = 1002;
    pub const VARIANT_PACK_WORKSPACE: u32 = 1003;
    pub const ENGINE_OPERATION_GRAPH: u32 = 1300;
    pub const ENGINE_GLOBAL_INDEX: u32 = 1301;
    pub const ENGINE_KNOB_INFO: u32 = 1302;
    pub const ENGINE_NUMERICAL_NOTE: u32 = 1303;
    pub const ENGINE_LAYOUT_INFO: u32 = 1304;
    pub const ENGINE_BEHAVIOR_NOTE: u32 = 1305;
    pub const ENGINE_SM_COUNT_TARGET: u32 = 1306;
    pub const MATMUL_COMP_TYPE: u32 = 1500;
    pub const OPERATION_MATMUL_ADESC: u32 = 1520;
    pub const OPERATION_MATMUL_BDESC: u32 = 1521;
    pub const OPERATION_MATMUL_CDESC: u32 = 1522;
    pub const OPERATION_MATMUL_DESC: u32 = 1523;
    pub const REDUCTION_OPERATOR: u32 = 1600;
    pub const REDUCTION_COMP_TYPE: u32 = 1601;
    pub const OPERATION_REDUCTION_XDESC: u32 = 1610;
    pub const OPERATION_REDUCTION_YDESC: u32 = 1611;
    pub const OPERATION_REDUCTION_DESC: u32 = 1612;
    pub const OPERATION_RESHAPE_XDESC: u32 = 2200;
    pub const OPERATION_RESHAPE_YDESC: u32 = 2201;
    pub const RNG_DISTRIBUTION: u32 = 2300;
    pub const OPERATION_RNG_YDESC: u32 = 2310;
    pub const OPERATION_RNG_SEED: u32 = 2311;
    pub const OPERATION_RNG_DESC: u32 = 2312;
    pub const OPERATION_RNG_OFFSET_DESC: u32 = 2313;
    pub const OPERATION_SDPA_FWD_QDESC: u32 = 2800;
    pub const OPERATION_SDPA_FWD_KDESC: u32 = 2801;
    pub const OPERATION_SDPA_FWD_VDESC: u32 = 2802;
    pub const OPERATION_SDPA_FWD_ODESC: u32 = 2803;
    pub const OPERATION_SDPA_BWD_QDESC: u32 = 2851;
    pub const OPERATION_SDPA_BWD_KDESC: u32 = 2852;
    pub const OPERATION_SDPA_BWD_VDESC: u32 = 2853;
}

/// `cudnnDataType_t` and element sizes.
pub mod dtype {
    pub const FLOAT: i32 = 0;
    pub const DOUBLE: i32 = 1;
    pub const HALF: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 4;
    pub const UINT8: i32 = 6;
    pub const BFLOAT16: i32 = 9;
    pub const INT64: i32 = 10;
    pub const BOOLEAN: i32 = 11;
    pub const FP8_E4M3: i32 = 12;
    pub const FP8_E5M2: i32 = 13;
    pub const FAST_FLOAT_FOR_FP8: i32 = 14;
    pub const FP8_E8M0: i32 = 15;
    pub const FP4_E2M1: i32 = 16;
    pub const UINT32: i32 = 19;

    /// Bytes per element (sub-byte types count as one byte), or `None` for a type Phantom does not size.
    pub fn bytes(t: i32) -> Option<u32> {
        Some(match t {
            DOUBLE | INT64 => 8,
            FLOAT | INT32 | UINT32 | FAST_FLOAT_FOR_FP8 => 4,
            HALF | BFLOAT16 => 2,
            INT8 | UINT8 | BOOLEAN | FP8_E4M3 | FP8_E5M2 | FP8_E8M0 | FP4_E2M1 | 17 | 18 => 1,
            _ => return None,
        })
    }

    pub fn name(t: i32) -> &'static str {
        match t {
            FLOAT => "fp32",
            DOUBLE => "fp64",
            HALF => "fp16",
            BFLOAT16 => "bf16",
            FP8_E4M3 => "fp8e4m3",
            FP8_E5M2 => "fp8e5m2",
            INT8 => "int8",
            INT32 => "int32",
            INT64 => "int64",
            BOOLEAN => "bool",
            _ => "other",
        }
    }
}

/// `cudnnPointwiseMode_t` values the timing model looks at.
pub mod pointwise {
    pub const EXP: i32 = 13;
    pub const CMP_EQ: i32 = 300;
    pub const CMP_LE: i32 = 305;
    pub const GEN_INDEX: i32 = 501;
    pub const BINARY_SELECT: i32 = 601;
}

/// `cudnnBackendKnobType_t`.
pub mod knob {
    pub const STAGES: i32 = 14;
    pub const KERNEL_CFG: i32 = 24;
}

/// `cudnnBackendNumericalNote_t` / `cudnnBackendBehaviorNote_t`.
pub mod note {
    pub const TENSOR_CORE: i32 = 0;
    pub const RUNTIME_COMPILATION: i32 = 0;
    pub const SUPPORTS_CUDA_GRAPH_NATIVE_API: i32 = 3;
}

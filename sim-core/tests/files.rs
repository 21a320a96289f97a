//! Loading cluster files and kernel-time tables from disk, as the runtime does.

use sim_core::config::{ClusterConfig, HostTimeMode};
use sim_core::ktable::{FallbackModel, KernelKey, KernelTable};
use sim_core::SimDuration;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

fn key(name: &str, grid: [u32; 3], block: [u32; 3], smem: u32) -> KernelKey {
    KernelKey { name: name.into(), grid, block, shared_mem_bytes: smem }
}

mod cluster_file {
    use super::*;

    #[test]
    fn loads_and_resolves_table_paths_against_its_directory() {
        let dir = fixtures();
        let c = ClusterConfig::load(&dir.join("cluster.toml")).unwrap();
        assert_eq!(c.name, "fixture");
        assert_eq!((c.nodes, c.gpus_per_node, c.total_gpus()), (2, 8, 16));
        assert_eq!(c.gpu.key, "h100-sxm-80gb");
        assert_eq!(c.host.mode, HostTimeMode::Deterministic);
        assert_eq!(c.host.cpu_scale, 1.0);
        assert_eq!(c.kernels.tables, vec![dir.join("tables/base.table"), dir.join("tables/override.table")]);
        assert_eq!(c.kernels.fallback, FallbackModel { base_ns: 3_000, per_wave_ns: 1_500 });
    }

    #[test]
    fn errors_name_the_file_the_field_and_the_line() {
        let path = fixtures().join("bad.toml");
        let e = ClusterConfig::load(&path).unwrap_err().0;
        assert_eq!(
            e,
            format!(
                "cluster file {}: unknown field `gpus_per_nod` in [root], expected one of `preset`, `name`, `nodes`, \
                 `gpus_per_node`, `gpu`, `host`, `kernels`, `network` (line 2)",
                path.display()
            )
        );
    }

    #[test]
    fn environment_can_name_a_file() {
        let path = fixtures().join("cluster.toml");
        let path = path.to_str().unwrap().to_string();
        let c = ClusterConfig::from_env_with(|k| match k {
            "PHANTOM_CLUSTER" => Some(path.clone()),
            "PHANTOM_HOST_TIME" => Some("measured".into()),
            "PHANTOM_KERNEL_TABLE" => Some("extra.table".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.name, "fixture");
        assert_eq!(c.host.mode, HostTimeMode::Measured);
        assert_eq!(c.kernels.tables.len(), 3);
        assert_eq!(c.kernels.tables[2], PathBuf::from("extra.table"));
    }
}

mod kernel_tables {
    use super::*;

    #[test]
    fn tables_merge_in_the_order_the_cluster_file_lists_them() {
        let c = ClusterConfig::load(&fixtures().join("cluster.toml")).unwrap();
        let mut t = KernelTable::default();
        for p in &c.kernels.tables {
            t.merge(KernelTable::load(p).unwrap());
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.gpu(), Some("h100-sxm-80gb"));
        assert_eq!(t.metadata("source"), Some("hand-written test fixture"));
        assert_eq!(t.warnings(), ["line 4: skipped record of unknown type `gemm`"]);
        let ns = |n| Some(SimDuration::from_nanos(n));
        assert_eq!(t.lookup(&key("spin(float*, int)", [2000, 1, 1], [256, 1, 1], 0)), ns(15_000));
        // `spin` with any configuration comes from the later table.
        assert_eq!(t.lookup(&key("spin(float*, int)", [1, 1, 1], [32, 1, 1], 0)), ns(25_000));
        assert_eq!(t.lookup(&key("void fill(float*, unsigned long)", [1, 1, 1], [32, 1, 1], 0)), ns(800));
        // A kernel no table lists takes the file's fallback model: 2000 blocks over 132 SMs × 8 → 2 waves.
        let k = key("missing(int)", [2000, 1, 1], [128, 1, 1], 0);
        assert_eq!(t.lookup(&k), None);
        assert_eq!(c.kernels.fallback.kernel_time(&c.gpu, &k, 8), SimDuration::from_nanos(3_000 + 2 * 1_500));
    }

    #[test]
    fn load_errors_name_the_file_and_line() {
        let path = fixtures().join("cluster.toml");
        let e = KernelTable::load(&path).unwrap_err();
        assert_eq!(e, format!("{}: line 1: expected the header `# phantom kernel-time table v1`", path.display()));
    }
}

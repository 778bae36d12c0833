//! Finding the CUDA libraries the binary loads at run time (NVRTC; cuBLAS for the layer
//! and model scopes, searched in the same folders, see [`load_cublas`]).
//!
//! The driver (`libcuda.so.1`) ships with the NVIDIA driver and is always on the system
//! library path; NVRTC is part of a toolkit and often is not (a pip wheel, a conda env,
//! `/usr/local/cuda-13.0/lib64` without an `ld.so.conf` entry). `cudarc` opens libraries by
//! name only, so we search the usual folders ourselves and preload the library we pick by
//! absolute path: the dynamic loader then hands cudarc that same copy when it asks for
//! the library by its soname (`libnvrtc.so.13` or `libnvrtc.so.12`).
//!
//! Search order (first folder holding an acceptable NVRTC wins):
//! 1. `$SQA_BENCH_CUDA_LIB_DIR` (a `:`-separated list),
//! 2. `$CUDA_HOME`, `$CUDA_PATH` (`lib64`, `lib`), `$CONDA_PREFIX/lib`,
//! 3. `/usr/local/cuda/lib64` and `/usr/local/cuda-*/lib64`, newest version first,
//! 4. pip wheels: `site-packages/nvidia/{cu13,cu12,cuda_nvrtc}/lib` of `$VIRTUAL_ENV`,
//!    `$CONDA_PREFIX`, `~/.local`, `/usr/local`, `/usr`, `/opt/conda`,
//! 5. `.toolchain/py/nvidia/cu13/lib` of the working folder and of the source tree (CI),
//! 6. the system library path (whatever `dlopen("libnvrtc.so.13")` finds).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Environment variable naming the folder(s) that hold `libnvrtc.so.*` (and `libcublas.so.*`).
pub const LIB_DIR_ENV: &str = "SQA_BENCH_CUDA_LIB_DIR";

/// NVRTC major versions this build can load, preferred first.
#[cfg(feature = "cuda-12")]
pub const NVRTC_MAJORS: &[u32] = &[12];
/// NVRTC major versions this build can load, preferred first.
#[cfg(not(feature = "cuda-12"))]
pub const NVRTC_MAJORS: &[u32] = &[13, 12];

/// The inputs of the folder search, gathered from the environment (or made up by tests).
#[derive(Debug, Clone, Default)]
pub struct SearchSpec {
    pub lib_dir: Option<String>,
    pub cuda_home: Option<String>,
    pub cuda_path: Option<String>,
    pub conda_prefix: Option<String>,
    pub virtual_env: Option<String>,
    pub home: Option<String>,
    /// The working folder and the source tree: their `.toolchain/py` is searched last.
    pub project_dirs: Vec<PathBuf>,
    /// Where `/usr`, `/usr/local` and `/opt` live: `/`, or a temporary folder in tests.
    pub root: PathBuf,
}

impl SearchSpec {
    /// The search inputs of this process.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut project_dirs = Vec::new();
        if let Ok(cwd) = std::env::current_dir() {
            project_dirs.push(cwd);
        }
        project_dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        SearchSpec {
            lib_dir: var(LIB_DIR_ENV),
            cuda_home: var("CUDA_HOME"),
            cuda_path: var("CUDA_PATH"),
            conda_prefix: var("CONDA_PREFIX"),
            virtual_env: var("VIRTUAL_ENV"),
            home: var("HOME"),
            project_dirs,
            root: PathBuf::from("/"),
        }
    }

    /// Folders to search, in priority order, without duplicates. Folders that do not
    /// exist are kept out, except those named by [`LIB_DIR_ENV`] (so errors can name them).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        if let Some(list) = &self.lib_dir {
            out.extend(list.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
        }
        let mut rest = Vec::new();
        for home in [&self.cuda_home, &self.cuda_path].into_iter().flatten() {
            rest.push(Path::new(home).join("lib64"));
            rest.push(Path::new(home).join("lib"));
        }
        if let Some(conda) = &self.conda_prefix {
            rest.push(Path::new(conda).join("lib"));
        }
        let local = self.root.join("usr/local");
        rest.push(local.join("cuda/lib64"));
        let mut versioned = subdirs(&local, "cuda-");
        versioned.sort_by_key(|d| std::cmp::Reverse(version_key(d)));
        rest.extend(versioned.into_iter().map(|d| d.join("lib64")));

        let mut py_roots: Vec<PathBuf> = Vec::new();
        py_roots.extend(self.virtual_env.iter().map(PathBuf::from));
        py_roots.extend(self.conda_prefix.iter().map(PathBuf::from));
        py_roots.extend(self.home.iter().map(|h| Path::new(h).join(".local")));
        py_roots.extend([
            local.clone(),
            self.root.join("usr"),
            self.root.join("opt/conda"),
        ]);
        for r in py_roots {
            for lib in subdirs(&r.join("lib"), "python3") {
                for site in ["site-packages", "dist-packages"] {
                    rest.extend(wheel_lib_dirs(&lib.join(site)));
                }
            }
        }
        rest.extend(wheel_lib_dirs(
            &self.root.join("usr/lib/python3/dist-packages"),
        ));
        for p in &self.project_dirs {
            rest.extend(wheel_lib_dirs(&p.join(".toolchain/py")));
        }
        for d in rest.into_iter().filter(|d| d.is_dir()) {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }
}

/// The library folders of NVIDIA's pip wheels under one `site-packages` (`cu13`, `cu12`:
/// the merged CUDA 13 wheels; `cuda_nvrtc`, `cublas`: the per-library CUDA 12 wheels).
fn wheel_lib_dirs(site: &Path) -> Vec<PathBuf> {
    ["cu13", "cu12", "cuda_nvrtc", "cublas"]
        .iter()
        .map(|w| site.join("nvidia").join(w).join("lib"))
        .collect()
}

/// Sub-folders of `dir` whose names start with `prefix` (none when `dir` is unreadable).
fn subdirs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// `cuda-12.4` → [12, 4]: numeric parts of a folder name, for newest-first ordering.
fn version_key(p: &Path) -> Vec<u32> {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// An NVRTC found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundNvrtc {
    pub path: PathBuf,
    pub major: u32,
    /// `libnvrtc-builtins.so.<major>.<minor>` beside it (NVRTC opens it itself).
    pub builtins: Vec<PathBuf>,
}

/// The first folder of `dirs` holding `libnvrtc.so.<major>` for one of `majors`; within a
/// folder the earliest entry of `majors` wins.
pub fn find_nvrtc(dirs: &[PathBuf], majors: &[u32]) -> Option<FoundNvrtc> {
    for dir in dirs {
        for &major in majors {
            let path = dir.join(format!("libnvrtc.so.{major}"));
            if path.is_file() {
                let prefix = format!("libnvrtc-builtins.so.{major}.");
                let builtins = std::fs::read_dir(dir)
                    .map(|es| {
                        let mut v: Vec<PathBuf> = es
                            .flatten()
                            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                            .map(|e| e.path())
                            .collect();
                        v.sort();
                        v
                    })
                    .unwrap_or_default();
                return Some(FoundNvrtc {
                    path,
                    major,
                    builtins,
                });
            }
        }
    }
    None
}

/// NVRTC majors worth loading for a driver supporting CUDA `driver_major` (`None`: no
/// driver, e.g. `kernels` on a build machine): code from a newer NVRTC than the driver
/// cannot be loaded by it.
pub fn acceptable_majors(driver_major: Option<u32>) -> Vec<u32> {
    NVRTC_MAJORS
        .iter()
        .copied()
        .filter(|&m| driver_major.is_none_or(|d| m <= d))
        .collect()
}

/// What [`load_nvrtc`] did: which file, or that the system path supplied it.
#[derive(Debug, Clone)]
pub struct NvrtcLib {
    /// The file preloaded by absolute path; `None` when the system library path supplied it.
    pub path: Option<PathBuf>,
    /// `major.minor` as NVRTC reports it.
    pub version: (i32, i32),
}

static NVRTC: OnceLock<std::result::Result<NvrtcLib, String>> = OnceLock::new();

/// Loads NVRTC once per process (see the module comment for where it looks). Later calls
/// return the first outcome.
pub fn load_nvrtc(driver_major: Option<u32>) -> Result<NvrtcLib> {
    NVRTC
        .get_or_init(|| load_nvrtc_uncached(driver_major))
        .clone()
        .map_err(Error::BackendUnavailable)
}

fn load_nvrtc_uncached(driver_major: Option<u32>) -> std::result::Result<NvrtcLib, String> {
    let spec = SearchSpec::from_env();
    let dirs = spec.dirs();
    let majors = acceptable_majors(driver_major);
    let found = find_nvrtc(&dirs, &majors);
    if let Some(f) = &found {
        // Builtins first: NVRTC opens them by soname when it compiles.
        for lib in f.builtins.iter().chain([&f.path]) {
            // SAFETY: loading NVIDIA's NVRTC runs its initialisers, which have no
            // preconditions; the handle is leaked on purpose so the library stays loaded
            // for the process (cudarc then gets this copy when it opens the soname).
            let opened = unsafe { libloading::Library::new(lib) };
            match opened {
                Ok(l) => std::mem::forget(l),
                Err(e) => return Err(format!("cannot load {}: {e}", lib.display())),
            }
        }
    }
    // SAFETY: only tries to dlopen the candidate names; no NVRTC function is called.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        let names: Vec<String> = majors.iter().map(|m| format!("libnvrtc.so.{m}")).collect();
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(format!(
            "NVRTC not found: looked for {} in [{}] and on the system library path; set {LIB_DIR_ENV} to the folder holding it{}",
            names.join(" or "),
            searched.join(", "),
            driver_major.map_or(String::new(), |d| format!(" (the driver supports CUDA {d}, so NVRTC must not be newer)")),
        ));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (checked above); both pointers are valid for writes.
    let rc = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if rc != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(format!("NVRTC is loaded but nvrtcVersion failed: {rc:?}"));
    }
    // The system path may hold a newer NVRTC than the driver can run code from.
    if let Some(d) = driver_major.filter(|&d| major as u32 > d) {
        return Err(format!(
            "NVRTC {major}.{minor} (from the system library path) is newer than the driver's CUDA {d}: set {LIB_DIR_ENV} to a folder holding libnvrtc.so.{d}"
        ));
    }
    Ok(NvrtcLib {
        path: found.map(|f| f.path),
        version: (major, minor),
    })
}

/// A cuBLAS found on disk: `libcublasLt.so.<major>` and `libcublas.so.<major>` in one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundCublas {
    pub lt: PathBuf,
    pub path: PathBuf,
    pub major: u32,
}

/// The first folder of `dirs` holding both cuBLAS libraries for one of `majors` (within a
/// folder the earliest entry of `majors` wins). cuBLAS needs its `Lt` library beside it.
pub fn find_cublas(dirs: &[PathBuf], majors: &[u32]) -> Option<FoundCublas> {
    dirs.iter().find_map(|dir| {
        majors.iter().find_map(|&major| {
            let lt = dir.join(format!("libcublasLt.so.{major}"));
            let path = dir.join(format!("libcublas.so.{major}"));
            (lt.is_file() && path.is_file()).then_some(FoundCublas { lt, path, major })
        })
    })
}

/// What [`load_cublas`] did.
#[derive(Debug, Clone)]
pub struct CublasLib {
    /// The file preloaded by absolute path; `None` when the system library path supplied it.
    pub path: Option<PathBuf>,
}

static CUBLAS: OnceLock<std::result::Result<CublasLib, String>> = OnceLock::new();

/// Loads cuBLAS (and cuBLASLt) once per process, from the same folders as NVRTC, majors
/// not newer than the driver's. Only the layer and model scopes need it: kernel-scope runs
/// never call this, so a machine without cuBLAS still runs them.
pub fn load_cublas(driver_major: Option<u32>) -> Result<CublasLib> {
    CUBLAS
        .get_or_init(|| load_cublas_uncached(driver_major))
        .clone()
        .map_err(Error::BackendUnavailable)
}

/// The cuBLAS [`load_cublas`] loaded, if it was called and succeeded.
pub fn cublas_loaded() -> Option<CublasLib> {
    CUBLAS.get().and_then(|r| r.clone().ok())
}

fn load_cublas_uncached(driver_major: Option<u32>) -> std::result::Result<CublasLib, String> {
    let dirs = SearchSpec::from_env().dirs();
    let majors = acceptable_majors(driver_major);
    let found = find_cublas(&dirs, &majors);
    if let Some(f) = &found {
        // cuBLASLt first: libcublas needs it by soname when it is loaded.
        for lib in [&f.lt, &f.path] {
            // SAFETY: loading NVIDIA's cuBLAS runs its initialisers, which have no
            // preconditions; the handle is leaked on purpose so the library stays loaded
            // for the process (cudarc then gets this copy when it opens the soname).
            match unsafe { libloading::Library::new(lib) } {
                Ok(l) => std::mem::forget(l),
                Err(e) => return Err(format!("cannot load {}: {e}", lib.display())),
            }
        }
    }
    // SAFETY: only tries to dlopen the candidate names; no cuBLAS function is called.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        let names: Vec<String> = majors
            .iter()
            .map(|m| format!("libcublas.so.{m} + libcublasLt.so.{m}"))
            .collect();
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(format!(
            "cuBLAS (needed by --scope layer and model) not found: looked for {} in [{}] and on the system library path; set {LIB_DIR_ENV} to the folder holding it (pip: nvidia-cublas)",
            names.join(" or "),
            searched.join(", "),
        ));
    }
    Ok(CublasLib {
        path: found.map(|f| f.path),
    })
}

/// Whether the CUDA driver library (`libcuda.so.1`) can be opened.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the candidate names; no driver function is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"").unwrap();
    }

    #[test]
    fn search_order_env_then_toolkits_newest_first_then_wheels() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for d in [
            "usr/local/cuda/lib64",
            "usr/local/cuda-12.4/lib64",
            "usr/local/cuda-13.0/lib64",
            "usr/local/cuda-12.10/lib64",
            "venv/lib/python3.11/site-packages/nvidia/cu13/lib",
            "usr/lib/python3.12/dist-packages/nvidia/cuda_nvrtc/lib",
            "proj/.toolchain/py/nvidia/cu13/lib",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let spec = SearchSpec {
            lib_dir: Some(format!("{}:/nonexistent/x", root.join("mine").display())),
            cuda_home: Some("/nonexistent/cuda".into()),
            virtual_env: Some(root.join("venv").display().to_string()),
            project_dirs: vec![root.join("proj")],
            root: root.to_path_buf(),
            ..Default::default()
        };
        let dirs: Vec<String> = spec
            .dirs()
            .iter()
            .map(|d| d.strip_prefix(root).unwrap_or(d).display().to_string())
            .collect();
        assert_eq!(
            dirs,
            [
                "mine",
                "/nonexistent/x",
                "usr/local/cuda/lib64",
                "usr/local/cuda-13.0/lib64",
                "usr/local/cuda-12.10/lib64",
                "usr/local/cuda-12.4/lib64",
                "venv/lib/python3.11/site-packages/nvidia/cu13/lib",
                "usr/lib/python3.12/dist-packages/nvidia/cuda_nvrtc/lib",
                "proj/.toolchain/py/nvidia/cu13/lib",
            ]
        );
    }

    #[test]
    fn finds_first_folder_and_preferred_major_with_builtins() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
        fs::create_dir_all(&a).unwrap();
        touch(&b.join("libnvrtc.so.12"));
        touch(&b.join("libnvrtc-builtins.so.12.4"));
        touch(&c.join("libnvrtc.so.13"));
        touch(&c.join("libnvrtc.so.12"));
        touch(&c.join("libnvrtc-builtins.so.13.0"));
        touch(&c.join("libnvrtc-builtins.alt.so.13.0"));
        let dirs = [a.clone(), b.clone(), c.clone()];

        let f = find_nvrtc(&dirs, &[13, 12]).unwrap();
        assert_eq!((f.path.clone(), f.major), (b.join("libnvrtc.so.12"), 12));
        assert_eq!(f.builtins, vec![b.join("libnvrtc-builtins.so.12.4")]);

        let f = find_nvrtc(&dirs[2..], &[13, 12]).unwrap();
        assert_eq!(
            (f.major, f.builtins.clone()),
            (13, vec![c.join("libnvrtc-builtins.so.13.0")])
        );
        let f = find_nvrtc(&dirs[2..], &[12]).unwrap();
        assert_eq!(f.path, c.join("libnvrtc.so.12"));
        assert!(f.builtins.is_empty());
        assert_eq!(find_nvrtc(&dirs[..1], &[13, 12]), None);
    }

    #[test]
    fn cublas_needs_both_libraries_in_one_folder() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
        touch(&a.join("libcublas.so.13")); // no Lt beside it: skipped
        touch(&b.join("libcublas.so.12"));
        touch(&b.join("libcublasLt.so.12"));
        touch(&c.join("libcublas.so.13"));
        touch(&c.join("libcublasLt.so.13"));
        let dirs = [a, b.clone(), c.clone()];
        let f = find_cublas(&dirs, &[13, 12]).unwrap();
        assert_eq!(
            (f.path, f.lt, f.major),
            (b.join("libcublas.so.12"), b.join("libcublasLt.so.12"), 12)
        );
        assert_eq!(
            find_cublas(&dirs, &[13]).unwrap().path,
            c.join("libcublas.so.13")
        );
        assert_eq!(find_cublas(&dirs[..1], &[13, 12]), None);
    }

    #[test]
    fn nvrtc_never_newer_than_the_driver() {
        assert_eq!(acceptable_majors(None), NVRTC_MAJORS.to_vec());
        assert!(acceptable_majors(Some(12)).iter().all(|&m| m <= 12));
        assert!(acceptable_majors(Some(11)).is_empty());
        assert_eq!(acceptable_majors(Some(99)), NVRTC_MAJORS.to_vec());
    }
}

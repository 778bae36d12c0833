//! Builds the host SIMT simulator (`cuda/sim/`) together with the CUDA kernel sources
//! it runs, into the static library `sqa_sim` linked into the crate (see `src/sim.rs`).
//!
//! The `.cu` files are the very sources NVRTC compiles at run time; here the host C++
//! compiler builds them with `cuda/sim/sim.h` force-included and `SQA_SIM` defined.
//! Mutants: copies of `attention_simple.cu` with one deliberate bug each, under
//! renamed entry points, so that tests can check that the simulator catches them.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A deliberately broken copy of the simple kernel: `target` must occur exactly once.
struct Mutant {
    /// Family name suffix: entry points become `attention_simple_mutant_<name>_...`.
    name: &'static str,
    target: &'static str,
    replacement: &'static str,
}

const MUTANTS: &[Mutant] = &[
    // The barrier between loading a K/V tile and reading it.
    Mutant {
        name: "barrier",
        target: "block_sync();  // the tile is complete before anyone reads it",
        replacement: "/* mutant: barrier removed */",
    },
    // The GQA head mapping replaced by a plausible but wrong one.
    Mutant {
        name: "headmap",
        target: "const int kv_head = head / (heads_eff / heads_kv);",
        replacement: "const int kv_head = head % heads_kv;",
    },
];

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let cuda = root.join("cuda");
    println!("cargo:rerun-if-changed=cuda");
    println!("cargo:rerun-if-changed=build.rs");
    embed_git_commit(&root);

    let simple = cuda.join("attention_simple.cu");
    let source = fs::read_to_string(&simple).expect("read cuda/attention_simple.cu");
    let mut kernels = vec![
        simple,
        cuda.join("model.cu"),
        cuda.join("attention_mma.cu"),
        cuda.join("sim/tests/selftest.cu"),
    ];
    for m in MUTANTS {
        kernels.push(write_mutant(&source, m, &out));
    }

    // Kernel sources first: their zero-initialised statics are exactly the `__shared__`
    // variables, which move to the section the simulator poisons before every block.
    let objects = base_build(&cuda).files(&kernels).compile_intermediates();
    for obj in &objects {
        move_bss_to_shared_section(obj);
    }
    base_build(&cuda)
        .files([
            cuda.join("sim/sim.cpp"),
            cuda.join("sim/api.cpp"),
            cuda.join("sim/model_api.cpp"),
            cuda.join("sim/tests/selftest_api.cpp"),
        ])
        .objects(&objects)
        .compile("sqa_sim");
}

/// C++17, -O2, the simulator header force-included, `SQA_SIM` defined, `-I cuda`.
fn base_build(cuda: &Path) -> cc::Build {
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .flag("-x")
        .flag("c++")
        .flag("-include")
        .flag(cuda.join("sim/sim.h").to_str().expect("utf-8 path"))
        .define("SQA_SIM", None)
        .include(cuda)
        .include(cuda.join("sim"))
        .flag_if_supported("-Wno-unused-parameter")
        // `#pragma unroll` is for NVRTC; the host compiler may ignore it.
        .flag_if_supported("-Wno-unknown-pragmas");
    build
}

/// Renames every `.bss*` section of a kernel object to `sqa_sim_shared`.
///
/// `sim.h` maps `__shared__` to a function-local `static`; GCC ignores a `section`
/// attribute on statics of function templates, so the section is assigned here. The
/// linker then defines `__start_sqa_sim_shared`/`__stop_sqa_sim_shared`, the bounds the
/// simulator fills with NaN before each block.
fn move_bss_to_shared_section(obj: &Path) {
    let objdump = env::var("OBJDUMP").unwrap_or_else(|_| "objdump".into());
    let objcopy = env::var("OBJCOPY").unwrap_or_else(|_| "objcopy".into());
    let listing = Command::new(&objdump)
        .arg("-h")
        .arg(obj)
        .output()
        .unwrap_or_else(|e| panic!("running {objdump} -h (binutils): {e}"));
    assert!(
        listing.status.success(),
        "{objdump} -h {} failed",
        obj.display()
    );
    let text = String::from_utf8_lossy(&listing.stdout);
    let bss: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|name| *name == ".bss" || name.starts_with(".bss."))
        .collect();
    if bss.is_empty() {
        return; // a kernel file without static shared memory
    }
    let mut cmd = Command::new(&objcopy);
    for name in bss {
        cmd.arg("--rename-section")
            .arg(format!("{name}=sqa_sim_shared"));
    }
    let status = cmd
        .arg(obj)
        .status()
        .unwrap_or_else(|e| panic!("running {objcopy} (binutils): {e}"));
    assert!(status.success(), "{objcopy} on {} failed", obj.display());
}

fn write_mutant(source: &str, m: &Mutant, out: &Path) -> PathBuf {
    let found = source.matches(m.target).count();
    assert_eq!(
        found, 1,
        "mutant '{}': target text found {found} times in cuda/attention_simple.cu, expected once: {}",
        m.name, m.target
    );
    let renamed = format!("attention_simple_mutant_{}_", m.name);
    let text = source
        .replace(m.target, m.replacement)
        .replace("attention_simple_", &renamed);
    assert!(
        text.contains(&format!("{renamed}##")),
        "mutant '{}': entry point names were not renamed",
        m.name
    );
    let path = out.join(format!("attention_simple_mutant_{}.cu", m.name));
    fs::write(&path, text).expect("write mutant source");
    path
}

/// Records the source commit in the binary (`SQA_BENCH_GIT_COMMIT`), so that a binary
/// carried to a GPU machine without the repository still names its commit in meta.json.
fn embed_git_commit(root: &Path) {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(commit) = git(&["rev-parse", "HEAD"]) {
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        let suffix = if dirty { "-dirty" } else { "" };
        println!("cargo:rustc-env=SQA_BENCH_GIT_COMMIT={commit}{suffix}");
    }
    // Rebuild when HEAD moves (the branch it names gets a commit), not on every `git add`.
    let head = root.join(".git/HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed={}", head.display());
        if let Some(r) = fs::read_to_string(&head)
            .ok()
            .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()))
        {
            println!(
                "cargo:rerun-if-changed={}",
                root.join(".git").join(r).display()
            );
        }
    }
}

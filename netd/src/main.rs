//! `cgsplit-netd`: the privileged helper's command line.
//!
//! ```text
//! cgsplit-netd [--cgroup-root DIR] [--bpffs DIR] serve [--address ADDR] [--max-per-uid N]
//! cgsplit-netd [--cgroup-root DIR] [--bpffs DIR] attach --cgroup DIR --policy localhost[,CIDR…]
//! cgsplit-netd [--cgroup-root DIR] [--bpffs DIR] detach --cgroup DIR
//! cgsplit-netd [--cgroup-root DIR] [--bpffs DIR] status --cgroup DIR
//! ```
//!
//! `serve` is the D-Bus service (what `cgsplit-netd.service` and D-Bus
//! activation run). `attach`/`detach`/`status` act directly, for systems
//! without the service and for scripts; they are root-only and take the
//! cgroup as a directory on disk. Exit status: 0 done, 1 refused or failed
//! (one line on stderr), 2 bad usage.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;
use cgsplit_core::policy::NetworkPolicy;
use cgsplit_netd::authz::Caller;
use cgsplit_netd::bpffs::{self, DEFAULT_BPFFS};
use cgsplit_netd::cgroupfs::CgroupRoot;
use cgsplit_netd::error::{Error, Result};
use cgsplit_netd::helper::{DEFAULT_MAX_PER_UID, Helper, Restricted};
use cgsplit_netd::service;

/// cgsplit's privileged network-filter helper.
#[derive(FromArgs)]
struct Args {
    /// cgroup2 directory that cgroup paths are relative to (default: the
    /// cgroup2 mount from /proc/self/mountinfo); tests point it at a
    /// throw-away cgroup
    #[argh(option)]
    cgroup_root: Option<PathBuf>,
    /// BPF file system to pin in (mounted there when it is not one);
    /// pins go to DIR/cgsplit (default /sys/fs/bpf)
    #[argh(option, default = "PathBuf::from(DEFAULT_BPFFS)")]
    bpffs: PathBuf,
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Serve(Serve),
    Attach(Attach),
    Detach(Detach),
    Status(Status),
}

/// Serve io.github.cgsplit.Netd1 on the system bus.
#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
struct Serve {
    /// a D-Bus address to serve on instead of the system bus (e.g.
    /// unix:path=/run/test/bus)
    #[argh(option)]
    address: Option<String>,
    /// most cgroups one non-root uid may have restricted (default 64)
    #[argh(option, default = "DEFAULT_MAX_PER_UID")]
    max_per_uid: usize,
}

/// Attach the filter to a cgroup directory (root only).
#[derive(FromArgs)]
#[argh(subcommand, name = "attach")]
struct Attach {
    /// the cgroup directory, e.g.
    /// /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope
    #[argh(option)]
    cgroup: PathBuf,
    /// the policy: localhost, or localhost,<cidr>,…
    #[argh(option)]
    policy: String,
}

/// Detach the filter from a cgroup directory (root only).
#[derive(FromArgs)]
#[argh(subcommand, name = "detach")]
struct Detach {
    /// the cgroup directory
    #[argh(option)]
    cgroup: PathBuf,
}

/// Show a cgroup's policy, xattr and counters as JSON (root only).
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
struct Status {
    /// the cgroup directory
    #[argh(option)]
    cgroup: PathBuf,
}

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cgsplit-netd: {}", e.message());
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    match &args.cmd {
        Cmd::Serve(_) => {}
        Cmd::Attach(_) => need_root("attach")?,
        Cmd::Detach(_) => need_root("detach")?,
        Cmd::Status(_) => need_root("status")?,
    }
    let root = match &args.cgroup_root {
        Some(dir) => CgroupRoot::at(dir)?,
        None => CgroupRoot::discover()?,
    };
    let me = Caller {
        uid: nix::unistd::geteuid().as_raw(),
        pid: Some(std::process::id()),
    };
    match args.cmd {
        Cmd::Serve(s) => {
            let helper = load(root, &args.bpffs, s.max_per_uid)?;
            service::serve(helper, s.address.as_deref())
        }
        Cmd::Attach(a) => {
            // Check what the user typed before touching BPF, so a typo gets
            // its own error even where the filter cannot load.
            a.policy
                .parse::<NetworkPolicy>()
                .map_err(|e| Error::InvalidArgs(e.to_string()))?;
            let cg = root.cgroup_of_dir(&a.cgroup)?;
            root.open(&cg)?;
            let mut helper = load(root, &args.bpffs, usize::MAX)?;
            match helper.restrict(&me, cg.as_str(), &a.policy)? {
                Restricted::Attached => println!("attached {} to {}", a.policy, a.cgroup.display()),
                Restricted::Updated => {
                    println!("updated {} to {}", a.cgroup.display(), a.policy)
                }
            }
            Ok(())
        }
        Cmd::Detach(d) => {
            let cg = root.cgroup_of_dir(&d.cgroup)?;
            root.open(&cg)?;
            let mut helper = load(root, &args.bpffs, usize::MAX)?;
            if helper.release(&me, cg.as_str(), false)? {
                println!("detached from {}", d.cgroup.display());
            } else {
                println!("{} was not restricted", d.cgroup.display());
            }
            Ok(())
        }
        Cmd::Status(s) => {
            let cg = root.cgroup_of_dir(&s.cgroup)?;
            root.open(&cg)?;
            let helper = load(root, &args.bpffs, usize::MAX)?;
            let v = helper.status(&me, cg.as_str())?;
            let text = serde_json::to_string_pretty(&v).expect("JSON values serialize");
            // A closed pipe (`| head`) is not an error of ours.
            let _ = writeln!(std::io::stdout(), "{text}");
            Ok(())
        }
    }
}

fn need_root(cmd: &str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    Err(Error::AccessDenied(format!(
        "`cgsplit-netd {cmd}` must run as root; as a user, ask the running service instead (cgsplit provision --network localhost)"
    )))
}

fn load(root: CgroupRoot, bpffs: &Path, max_per_uid: usize) -> Result<Helper> {
    bpffs::check_caps()?;
    let pins = bpffs::ensure_bpffs(bpffs)?;
    let filter = cgsplit_bpf::Filter::load(&pins)
        .map_err(|e| Error::Failed(format!("cannot load the network filter: {e}")))?;
    let mut helper = Helper::new(root, filter, max_per_uid);
    let gone = helper.gc()?;
    if gone > 0 {
        eprintln!("cgsplit-netd: dropped the pins of {gone} cgroups that no longer exist");
    }
    Ok(helper)
}

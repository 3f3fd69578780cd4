//! The testbed's own options: a private system bus, root daemons, a private
//! network namespace. Other tests build on them (the privileged helper on the
//! system bus, `flatpak --user install`, network policy traffic).

use cgsplit_tests::testbed::Testbed;

#[test]
fn system_bus_root_daemon_and_private_netns() {
    let Some(tb) = Testbed::or_skip() else { return };
    let out = tb
        .system_bus()
        .net()
        // A root process that sees the same system bus as the command.
        .root_daemon(
            "echo \"root-daemon uid=$(id -u) bus=$DBUS_SYSTEM_BUS_ADDRESS\" >/run/probe.tmp \
             && mv /run/probe.tmp /run/probe; exec sleep 60",
        )
        .run_sh(
            r#"set -e
            echo "uid=$(id -u)"
            echo "bus=$DBUS_SYSTEM_BUS_ADDRESS"
            busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId
            ip -o link | awk -F': ' '{print "link=" $2}'
            for i in $(seq 100); do [ -e /run/probe ] && break; sleep 0.05; done
            cat /run/probe
            "#,
        );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("root-daemon uid=0 bus=unix:path=/run/dbus/system_bus_socket"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bus=unix:path=/run/dbus/system_bus_socket"),
        "{stdout}"
    );
    // The command is the unprivileged test uid, and sees only `lo`.
    assert!(!stdout.contains("uid=0\n"), "{stdout}");
    let links: Vec<&str> = stdout.lines().filter(|l| l.starts_with("link=")).collect();
    assert_eq!(links, ["link=lo"], "{stdout}");
}

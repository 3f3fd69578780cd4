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

#[test]
fn second_user_has_its_own_manager_leaf_and_env_and_its_output_is_relayed() {
    let Some(tb) = Testbed::or_skip() else { return };
    let out = tb
        .second_sh(
            r#"set -e
            echo "uid=$(id -u) own=$TESTBED_UID uid2=$TESTBED_UID2"
            echo "env=$HOME $XDG_RUNTIME_DIR $DBUS_SESSION_BUS_ADDRESS"
            echo "cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup)"
            # Its own manager answers, and runs a transient unit for it.
            echo "manager=$(systemctl --user show -P ControlGroup)"
            echo "unit_$(systemd-run --user --quiet --pipe --wait sed -n 's/^0:://p' /proc/self/cgroup)"
            echo "run_user=$(stat -c '%u %a' $XDG_RUNTIME_DIR)"
            # The first uid's runtime dir (and bus) are closed to it.
            ls /run/user/$TESTBED_UID1 >/dev/null 2>&1 && echo "sees_first=yes" || echo "sees_first=no"
            echo "from second" > $TESTBED_SHARED/hello.tmp && mv $TESTBED_SHARED/hello.tmp $TESTBED_SHARED/hello
            for i in $(seq 200); do [ -e $TESTBED_SHARED/bye ] && break; sleep 0.05; done
            echo "got=$(cat $TESTBED_SHARED/bye)"
            echo "to stderr" >&2
            "#,
        )
        .run_sh(
            r#"set -e
            echo "uid=$(id -u) own=$TESTBED_UID uid1=$TESTBED_UID1 uid2=$TESTBED_UID2"
            echo "cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup)"
            for i in $(seq 200); do [ -e $TESTBED_SHARED/hello ] && break; sleep 0.05; done
            echo "got=$(cat $TESTBED_SHARED/hello)"
            echo "from first" > $TESTBED_SHARED/bye
            for i in $(seq 200); do [ -e $TESTBED_SHARED/second.rc ] && break; sleep 0.05; done
            echo "second_rc=$(cat $TESTBED_SHARED/second.rc)"
            echo "second_out_lines=$(grep -c '' $TESTBED_SHARED/second.out)"
            "#,
        );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = |prefix: &str| -> &str {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line:\n{stdout}\n{stderr}"))
    };
    let first: Vec<&str> = line("uid=").split_whitespace().collect();
    let uid1 = first[0].trim_start_matches("uid=");
    let uid2 = first[3].trim_start_matches("uid2=");
    assert_ne!(uid1, "0");
    assert_ne!(uid1, uid2);
    assert_eq!(first[1], format!("own={uid1}"));
    assert_eq!(first[2], format!("uid1={uid1}"));
    assert_eq!(
        line("cgroup="),
        format!(
            "cgroup=/user.slice/user-{uid1}.slice/user@{uid1}.service/app.slice/cgsplit-testbed"
        )
    );
    assert_eq!(line("got="), "got=from second");
    // Only the first's lines are unprefixed; the second's follow, prefixed,
    // after the first's last line.
    let second: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("second: "))
        .collect();
    assert!(
        stdout
            .lines()
            .position(|l| l.starts_with("second: "))
            .unwrap()
            > stdout
                .lines()
                .position(|l| l.starts_with("second_rc="))
                .unwrap(),
        "{stdout}"
    );
    assert_eq!(line("second_rc="), "second_rc=0");
    assert_eq!(
        line("second_out_lines="),
        format!("second_out_lines={}", second.len())
    );
    assert_eq!(second[0], format!("uid={uid2} own={uid2} uid2={uid2}"));
    assert_eq!(
        second[1],
        format!("env=/run/cgsplit-testbed-home2 /run/user/{uid2} unix:path=/run/user/{uid2}/bus")
    );
    assert_eq!(
        second[2],
        format!(
            "cgroup=/user.slice/user-{uid2}.slice/user@{uid2}.service/app.slice/cgsplit-testbed"
        )
    );
    assert_eq!(
        second[3],
        format!("manager=/user.slice/user-{uid2}.slice/user@{uid2}.service")
    );
    assert!(
        second[4].starts_with(&format!(
            "unit_/user.slice/user-{uid2}.slice/user@{uid2}.service/app.slice/run-"
        )),
        "{stdout}"
    );
    assert_eq!(second[5], format!("run_user={uid2} 700"));
    assert_eq!(second[6], "sees_first=no");
    assert_eq!(second[7], "got=from first");
    assert!(stderr.lines().any(|l| l == "second: to stderr"), "{stderr}");
}

#[test]
fn a_failing_second_script_fails_the_run_and_says_so() {
    let Some(tb) = Testbed::or_skip() else { return };
    let out = tb.second_sh("echo partial; exit 3").run_sh("echo first");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert_eq!(stdout, "first\nsecond: partial\n");
    assert!(
        stderr.contains("the second command (uid ") && stderr.contains(") exited with status 3"),
        "{stderr}"
    );
}

//! Table tests: config text in, effective settings or the exact error position out.

use super::*;

fn app(n: u32) -> AppId {
    AppId::new(n).unwrap()
}

const FULL: &str = r#"
[defaults]
memory_high = "6G"
memory_max = "8G"
cpu_weight = 100
tasks_max = 4096
network = "full"
kill_steam_on_exit = false

[games.620]
memory_max = "50%"
network = "localhost"

[games.1091500]
network = ["192.168.1.7/24", "fd00::/8"]
kill_steam_on_exit = true
cpu_weight = 500
tasks_max = "infinity"
"#;

#[test]
fn games_inherit_defaults_key_by_key() {
    let c = Config::parse(FULL).unwrap();
    assert_eq!(
        c.games().iter().map(|g| g.app.get()).collect::<Vec<_>>(),
        vec![620, 1091500]
    );
    let g = c.game(app(620));
    assert_eq!(g.memory_high, Some(Limit::Absolute(6 << 30)));
    assert_eq!(g.memory_max, Some(Limit::Permyriad(5000)));
    assert_eq!(g.cpu_weight, Some(100));
    assert_eq!(g.tasks_max, Some(Limit::Absolute(4096)));
    assert_eq!(g.network.to_string(), "localhost");
    assert!(!g.kill_steam_on_exit);

    let g = c.game(app(1091500));
    assert_eq!(g.memory_max, Some(Limit::Absolute(8 << 30)));
    assert_eq!(g.cpu_weight, Some(500));
    assert_eq!(g.tasks_max, Some(Limit::Infinity));
    assert_eq!(g.network.to_string(), "localhost,192.168.1.0/24,fd00::/8");
    assert!(g.kill_steam_on_exit);

    // A game without a table gets the defaults.
    let g = c.game(app(70));
    assert_eq!(g.memory_max, Some(Limit::Absolute(8 << 30)));
    assert_eq!(g.network, NetworkPolicy::Full);
}

#[test]
fn empty_config_means_no_limits() {
    for text in ["", "# nothing\n", "[defaults]\n", "[games]\n"] {
        let c = Config::parse(text).unwrap();
        assert!(c.games().is_empty(), "{text:?}");
        let g = c.game(app(620));
        assert_eq!(g.unit_properties(), vec![], "{text:?}");
        assert!(g.shim_flags().is_empty());
        assert_eq!(g.network, NetworkPolicy::Full);
    }
}

#[test]
fn shim_flags_carry_what_the_shim_cannot_read() {
    let c = Config::parse(FULL).unwrap();
    assert_eq!(c.game(app(620)).shim_flags(), ["--network", "localhost"]);
    assert_eq!(
        c.game(app(1091500)).shim_flags(),
        [
            "--network",
            "localhost,192.168.1.0/24,fd00::/8",
            "--kill-steam"
        ]
    );
    assert!(c.game(app(70)).shim_flags().is_empty());
}

#[test]
fn unit_properties_use_systemd_names_and_types() {
    let c = Config::parse(FULL).unwrap();
    assert_eq!(
        c.game(app(620)).unit_properties(),
        vec![
            ("MemoryHigh".into(), PropertyValue::U64(6 << 30)),
            ("MemoryMaxScale".into(), PropertyValue::U32(2_147_483_648)),
            ("CPUWeight".into(), PropertyValue::U64(100)),
            ("TasksMax".into(), PropertyValue::U64(4096)),
        ]
    );
    assert_eq!(
        c.game(app(1091500)).unit_properties()[3],
        ("TasksMax".into(), PropertyValue::U64(u64::MAX))
    );
}

#[test]
fn sizes_may_be_integers_of_bytes() {
    let c = Config::parse("[games.5]\nmemory_max = 1073741824\n").unwrap();
    assert_eq!(c.game(app(5)).memory_max, Some(Limit::Absolute(1 << 30)));
}

#[test]
fn network_accepts_the_policy_text_form_too() {
    let c = Config::parse("[games.5]\nnetwork = \"localhost,10.0.0.1/8\"\n").unwrap();
    assert_eq!(c.game(app(5)).network.to_string(), "localhost,10.0.0.0/8");
    let c = Config::parse("[games.5]\nnetwork = []\n").unwrap();
    assert_eq!(c.game(app(5)).network.to_string(), "localhost");
}

/// (config text, line, column, key, part of the message)
const BAD: &[(&str, usize, usize, Option<&str>, &str)] = &[
    (
        "[defaults]\nmemory_hihg = \"1G\"\n",
        2,
        1,
        Some("defaults.memory_hihg"),
        "unknown key; known keys: memory_high",
    ),
    (
        "[games.620]\nmemory_max = \"12X\"\n",
        2,
        14,
        Some("games.620.memory_max"),
        "unknown unit `X`",
    ),
    (
        "[games.620]\n\nmemory_high = \"-5G\"\n",
        3,
        15,
        Some("games.620.memory_high"),
        "sizes cannot be negative",
    ),
    (
        "[games.620]\nmemory_high = -5\n",
        2,
        15,
        Some("games.620.memory_high"),
        "non-negative integer, not the integer -5",
    ),
    (
        "[games.portal]\nmemory_max = \"1G\"\n",
        1,
        8,
        Some("games.portal"),
        "`portal` is not a Steam app id",
    ),
    (
        "[games.0620]\n",
        1,
        8,
        Some("games.0620"),
        "not a Steam app id",
    ),
    (
        "[games.620]\ncpu_weight = 1\n[games.620]\ncpu_weight = 2\n",
        3,
        1,
        None,
        "duplicate key",
    ),
    (
        "[defaults]\ncpu_weight = 1\ncpu_weight = 2\n",
        3,
        1,
        None,
        "duplicate key",
    ),
    (
        "[games.620]\ncpu_weight = 0\n",
        2,
        14,
        Some("games.620.cpu_weight"),
        "from 1 to 10000",
    ),
    (
        "[games.620]\ncpu_weight = \"100\"\n",
        2,
        14,
        Some("games.620.cpu_weight"),
        "not the string \"100\"",
    ),
    (
        "[games.620]\nnetwork = \"offline\"\n",
        2,
        11,
        Some("games.620.network"),
        "unknown network policy \"offline\"",
    ),
    (
        "[games.620]\nnetwork = [\"10.0.0.0/33\"]\n",
        2,
        11,
        Some("games.620.network"),
        "prefix longer than 32",
    ),
    (
        "[games.620]\nnetwork = [1]\n",
        2,
        11,
        Some("games.620.network"),
        "CIDR strings",
    ),
    (
        "[games.620]\nkill_steam_on_exit = \"yes\"\n",
        2,
        22,
        Some("games.620.kill_steam_on_exit"),
        "true or false",
    ),
    (
        "[games.620]\ntasks_max = 0\n",
        2,
        13,
        Some("games.620.tasks_max"),
        "task count",
    ),
    ("[limits]\n", 1, 2, None, "unknown field `limits`"),
    (
        "memory_max = \"1G\"\n",
        1,
        1,
        None,
        "unknown field `memory_max`",
    ),
    ("[games.620\n", 1, 11, None, ""),
    ("games = 5\n", 1, 9, None, "invalid type"),
];

#[test]
fn bad_input_names_line_column_and_key() {
    for &(text, line, column, key, needle) in BAD {
        let e = Config::parse(text).unwrap_err();
        let ConfigError::Invalid {
            line: l,
            column: c,
            key: k,
            message,
            ..
        } = &e
        else {
            panic!("{text:?}: {e:?}");
        };
        assert_eq!((*l, *c), (line, column), "{text:?}: {e}");
        assert_eq!(k.as_deref(), key, "{text:?}: {e}");
        assert!(message.contains(needle), "{text:?}: {e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("<string>:{line}:{column}: ")),
            "{shown}"
        );
        assert!(!shown.contains('\n'), "one line: {shown}");
    }
}

#[test]
fn load_names_the_file_and_treats_a_missing_one_as_empty() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("config.toml");
    let c = Config::load(&p).unwrap();
    assert!(c.games.is_empty());
    assert_eq!(c.path.as_deref(), Some(p.as_path()));

    std::fs::write(&p, "[games.620]\nmemory_max = \"lots\"\n").unwrap();
    let e = Config::load(&p).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:2:14: games.620.memory_max: ", p.display())),
        "{e}"
    );

    // A directory cannot be read as a file: a Read error naming it.
    let e = Config::load(d.path()).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains(&*d.path().to_string_lossy()));
}

#[test]
fn default_path_follows_xdg_config_home() {
    // Only checks the shape: the env is shared between parallel tests.
    if let Ok(p) = Config::default_path() {
        assert!(p.ends_with("cgsplit/config.toml"), "{}", p.display());
    }
}

#[test]
fn display_shows_effective_settings() {
    let c = Config::parse(FULL).unwrap();
    assert_eq!(
        c.game(app(620)).to_string(),
        "620: memory_high=6442450944 memory_max=50% cpu_weight=100 tasks_max=4096 network=localhost kill_steam_on_exit=false"
    );
    assert_eq!(
        Config::default().game(app(1)).to_string(),
        "1: memory_high=- memory_max=- cpu_weight=- tasks_max=- network=full kill_steam_on_exit=false"
    );
}

#[test]
#[ignore = "prints the messages for review: cargo test -p cgsplit-config -- --ignored --nocapture"]
fn show_messages() {
    for &(text, ..) in BAD {
        println!("{}", Config::parse(text).unwrap_err());
    }
}
